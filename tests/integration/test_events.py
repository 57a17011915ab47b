"""The event stream (SSE): live, filtered, permission-checked; the CLI waits on it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgecloud.client import Client
from tests.support.frontend import RunningFrontEnd
from tests.support.waiting import wait_vms

EDGECLOUD = str(Path(sys.executable).parent / "edgecloud")
MakeUser = Callable[..., Client]


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> dict[str, object]:
    """Run the loops fast on fake hosts."""
    return {
        "scheduler_interval": 0.1,
        "monitor_interval": 0.5,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake")),
    }


@pytest.fixture(scope="module", autouse=True)
def fake_host(admin: Client) -> int:
    """Register one fake host."""
    return admin.hosts.create(
        name="events-host", hypervisor="fake", total_cpu=32, total_memory_mb=65536
    ).id


def _collect(
    client: Client,
    out: list[dict[str, Any]],
    stop: Callable[[dict[str, Any]], bool],
    **filters: Any,
) -> threading.Thread:
    ready = threading.Event()

    def run() -> None:
        try:
            for event in client.events(timeout=10, **filters):
                if event["kind"] == "connected":
                    ready.set()
                    continue
                out.append(event)
                if stop(event):
                    return
        except httpx.HTTPError:
            return  # the stream went quiet, or the test closed the client

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "no connection to the event stream"
    return thread


def test_events_follow_a_vm_to_running(admin: Client) -> None:
    seen: list[dict[str, Any]] = []
    vm_box: list[int] = []
    thread = _collect(admin, seen, lambda e: e["id"] in vm_box and e["lcm_state"] == 3, kind="vm")
    vm = admin.vms.create(template={"CPU": 1, "MEMORY": 64, "FAKE_DEPLOY_DELAY": "0.2"})
    vm_box.append(vm.id)
    thread.join(timeout=20)
    mine = [(e["state"], e["lcm_state"]) for e in seen if e["id"] == vm.id]
    assert (3, 2) in mine and mine[-1] == (3, 3)  # BOOT, then RUNNING
    admin.vms.action(vm.id, "terminate")


def test_events_are_permission_checked(make_user: MakeUser) -> None:
    alice, bob = make_user(), make_user()
    seen_by_bob: list[dict[str, Any]] = []
    thread = _collect(bob, seen_by_bob, lambda e: False)
    vm = alice.vms.create(template={"CPU": 1, "MEMORY": 64})
    wait_vms(alice, [vm.id], lambda s: s == "ACTIVE/RUNNING")
    time.sleep(0.3)
    assert all(e["id"] != vm.id for e in seen_by_bob)
    seen_by_alice: list[dict[str, Any]] = []
    alice_thread = _collect(alice, seen_by_alice, lambda e: e["id"] == vm.id and e["state"] == 8)
    alice.vms.action(vm.id, "poweroff")
    alice_thread.join(timeout=20)
    assert seen_by_alice[-1]["state"] == 8
    del thread


def _cli(
    frontend: RunningFrontEnd, admin_auth: str, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGECLOUD_URL": frontend.url, "EDGECLOUD_AUTH": admin_auth}
    return subprocess.run(
        [EDGECLOUD, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_cli_create_wait_and_vm_wait(frontend: RunningFrontEnd, admin: Client) -> None:
    auth = f"{frontend.admin_user}:{frontend.admin_password}"
    created = _cli(
        frontend,
        auth,
        "vm",
        "create",
        "--file",
        "-",
        "--wait",
        "-o",
        "json",
        stdin='CPU = 1\nMEMORY = 64\nFAKE_DEPLOY_DELAY = "0.3"\n',
    )
    assert created.returncode == 0, created.stderr
    import json

    vm = json.loads(created.stdout)
    assert (vm["state_name"], vm["lcm_state_name"]) == ("ACTIVE", "RUNNING")
    assert _cli(frontend, auth, "vm", "poweroff", str(vm["id"])).returncode == 0
    waited = _cli(frontend, auth, "vm", "wait", str(vm["id"]), "--state", "POWEROFF")
    assert waited.returncode == 0, waited.stderr
    assert "POWEROFF" in waited.stdout
    failing = _cli(
        frontend,
        auth,
        "vm",
        "create",
        "--file",
        "-",
        "--wait",
        stdin='CPU = 1\nFAKE_FAIL = "deploy"\n',
    )
    assert failing.returncode == 1
    assert "BOOT_FAILURE" in failing.stderr and "failed as scripted" in failing.stderr


def test_host_state_changes_are_events(admin: Client, fake_host: int) -> None:
    seen: list[dict[str, Any]] = []
    thread = _collect(admin, seen, lambda e: e["state"] == 2 and e["id"] == fake_host, kind="host")
    admin.hosts.status(fake_host, "disabled")  # the API's own change: DISABLED (4)
    admin.hosts.status(fake_host, "enabled")  # back to INIT; the monitor then MONITORED (2)
    thread.join(timeout=20)
    states = [e["state"] for e in seen if e["id"] == fake_host]
    assert states[0] == 4 and states[-1] == 2, states


def test_summary_counts_what_the_caller_sees(admin: Client, make_user: MakeUser) -> None:
    vm = admin.vms.create(template={"CPU": 1, "MEMORY": 64}, hold=True)
    mine = admin.request("GET", "/summary")
    assert mine["vms_by_state"].get("HOLD", 0) >= 1
    assert mine["hosts_by_state"] and mine["total_cpu"] >= 32
    site = next(c for c in mine["clusters"] if c["id"] == 0)
    assert site["provider"] == "onprem" and site["hosts"] >= 1
    other = make_user().request("GET", "/summary")
    assert other["vms_by_state"] == {} and other["hosts_by_state"] == {}
    admin.vms.action(vm.id, "terminate")
