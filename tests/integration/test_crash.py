"""Crash safety: kill -9 the front-end at a random moment while 100 VMs deploy, restart it.

Every VM must end RUNNING (or in a named failure state), none may be deployed twice
(the fake hypervisor counts deploys per VM on its own disk), and no lease or host
capacity may be left behind.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from edgecloud.api.states import state_label
from edgecloud.client import Client, EdgecloudError, read_auth_file
from edgecloud.drivers.fake import read_deploy_counts
from tests.support.waiting import wait_vms

pytestmark = pytest.mark.integration
VMS = 100
SEEDS = range(10)
SETTLED = ("ACTIVE/RUNNING",)
INTERRUPTED: list[int] = []  # VMs caught mid-way by each crash (the test must hit some)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def front_end(home: Path, db_url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run `edgecloud up` as a subprocess; make sure it is gone afterwards (by its PID)."""
    env = {
        **os.environ,
        "EDGECLOUD_HOME": str(home),
        "EDGECLOUD_DB": db_url,
        "EDGECLOUD_LEASE_SECONDS": "1.0",
        "EDGECLOUD_SCHEDULER_INTERVAL": "0.1",
        "EDGECLOUD_MONITOR_INTERVAL": "0.5",
        "EDGECLOUD_LOG_LEVEL": "WARNING",
    }
    edgecloud = str(Path(sys.executable).parent / "edgecloud")
    proc = subprocess.Popen(
        [edgecloud, "up", "--bind", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v1/version", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, "front-end exited at start"
                assert time.monotonic() < deadline, "front-end did not start"
                time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def _submit(client: Client, vnet_id: int, rng: random.Random, created: list[int]) -> None:
    for n in range(VMS):
        template = {
            "NAME": f"crash-{n}",
            "CPU": 0.5,
            "MEMORY": 64,
            "NIC": [{"NETWORK_ID": vnet_id}],
            "FAKE_DEPLOY_DELAY": f"{rng.uniform(0, 0.3):.2f}",
        }
        try:
            created.append(client.vms.create(template=template).id)
        except (httpx.TransportError, EdgecloudError):
            return  # the front-end died under us


def _run_once(seed: int, home: Path, db_url: str) -> None:
    rng = random.Random(seed)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with front_end(home, db_url, port) as proc:
        user, password = read_auth_file(home / "auth")
        admin = Client(url, user=user, password=password)
        admin.login()
        hosts = [
            admin.hosts.create(
                name=f"crash-{i}", hypervisor="fake", total_cpu=40, total_memory_mb=65536
            ).id
            for i in range(3)
        ]
        vnet = admin.vnets.create(
            name="crash-net", address_ranges=[{"ip": "198.18.50.1", "size": 200}]
        )
        created: list[int] = []
        submitter = threading.Thread(target=_submit, args=(admin, vnet.id, rng, created))
        submitter.start()
        time.sleep(rng.uniform(0.2, 3.0))
        os.kill(proc.pid, signal.SIGKILL)  # the crash
        submitter.join(timeout=30)
    with front_end(home, db_url, port):
        admin = Client(url, user=user, password=password)
        vm_ids = [v.id for v in admin.vms.list()]
        unsettled = [
            v for v in admin.vms.list() if state_label(v.state, v.lcm_state) not in SETTLED
        ]
        INTERRUPTED.append(len(unsettled))
        assert set(created) <= set(vm_ids)
        states = wait_vms(
            admin, vm_ids, lambda s: s in SETTLED or s.endswith("_FAILURE"), timeout=90
        )
        _check_no_double_deploys(home, states)
        _check_nothing_leaked(admin, vnet.id, hosts, vm_ids)


def _check_no_double_deploys(home: Path, states: dict[int, str]) -> None:
    counts = read_deploy_counts(home / "fake-hosts")
    twice = {vm: n for vm, n in counts.items() if n > 1}
    assert not twice, f"deployed more than once: {twice}"
    running = [vm for vm, s in states.items() if s == "ACTIVE/RUNNING"]
    assert all(counts.get(vm) == 1 for vm in running)


def _check_nothing_leaked(admin: Client, vnet_id: int, hosts: list[int], vm_ids: list[int]) -> None:
    vms = [admin.vms.get(v) for v in vm_ids]
    leases = admin.vnets.leases(vnet_id)
    assert sorted(x.vm_id or -1 for x in leases) == sorted(vm_ids), (
        "a lease without its VM, or a VM without its lease"
    )
    assert len({x.ip for x in leases}) == len(leases)
    for host_id in hosts:
        host = admin.hosts.get(host_id)
        mine = [v for v in vms if v.host_id == host_id]
        assert host.running_vms == len(mine), state_label(host.state, 0)
        assert abs(host.used_cpu - sum(v.cpu for v in mine)) < 1e-6
        assert host.used_memory_mb == sum(v.memory_mb for v in mine)


@pytest.mark.parametrize("seed", SEEDS)
def test_crash_sqlite(seed: int, tmp_path: Path) -> None:
    _run_once(seed, tmp_path, "")


@pytest.mark.parametrize("seed", range(2))
def test_crash_postgresql(seed: int, tmp_path: Path, pg_server: object) -> None:
    url = pg_server.create_database(f"crash_{seed}_{os.getpid()}")  # type: ignore[attr-defined]
    _run_once(seed, tmp_path, url)


def test_crashes_interrupted_work() -> None:
    assert INTERRUPTED, "run with the crash tests"
    assert sum(1 for n in INTERRUPTED if n) >= len(INTERRUPTED) // 2, INTERRUPTED
