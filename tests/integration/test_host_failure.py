"""A fake host stops answering: its VMs go UNKNOWN, are recreated elsewhere, never resumed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edgecloud.client import Client
from edgecloud.drivers.fake import FakeHypervisor
from tests.support.frontend import RunningFrontEnd
from tests.support.waiting import wait_vms

RUNNING = "ACTIVE/RUNNING"


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> dict[str, object]:
    """Monitor fast: a host is ERROR after two missed probes."""
    return {
        "scheduler_interval": 0.1,
        "monitor_interval": 0.2,
        "host_error_after": 2,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake-hosts")),
    }


def _wait_host(admin: Client, host_id: int, check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check(admin.hosts.get(host_id)):  # type: ignore[operator]
        assert time.monotonic() < deadline, admin.hosts.get(host_id)
        time.sleep(0.05)


def _setup(admin: Client, name: str, *, recreate: bool) -> tuple[int, int, list[int]]:
    cluster = admin.clusters.create(
        name=name, recreate_on_host_failure=recreate, host_failure_grace=1
    )
    a = admin.hosts.create(
        name=f"{name}-a",
        cluster_id=cluster.id,
        hypervisor="fake",
        total_cpu=8,
        total_memory_mb=8192,
    )
    b = admin.hosts.create(
        name=f"{name}-b",
        cluster_id=cluster.id,
        hypervisor="fake",
        total_cpu=8,
        total_memory_mb=8192,
    )
    admin.hosts.status(b.id, "disabled")  # everything lands on A first
    requirement = f"CLUSTER_ID = {cluster.id}"
    vms = [
        admin.vms.create(template={"CPU": 1, "MEMORY": 128, "SCHED_REQUIREMENTS": requirement}).id
        for _ in range(5)
    ]
    wait_vms(admin, vms, lambda s: s == RUNNING)
    admin.hosts.status(b.id, "enabled")
    return a.id, b.id, vms


def test_host_failure_recreates_vms_elsewhere_and_fences(
    admin: Client, frontend: RunningFrontEnd
) -> None:
    a, b, vms = _setup(admin, "fail-site", recreate=True)
    admin.hosts.update(a, template={"FAKE_DOWN": "YES"})
    _wait_host(admin, a, lambda h: h.state_name == "ERROR")
    _wait_host(admin, a, lambda h: h.fenced)  # after the grace period
    deadline = time.monotonic() + 30
    while {admin.vms.get(v).host_id for v in vms} != {b}:
        assert time.monotonic() < deadline, [admin.vms.get(v) for v in vms]
        time.sleep(0.1)
    wait_vms(admin, vms, lambda s: s == RUNNING)
    history = [h.action for h in admin.vms.history(vms[0])]
    assert "monitor: host unreachable" in history
    assert "recreate" in history

    # A comes back: its old guests are removed there, not resumed; it takes no new VMs.
    admin.hosts.update(a, template={})
    _wait_host(admin, a, lambda h: h.state_name == "MONITORED")
    fake = FakeHypervisor(Path(str(frontend.settings.fake_state_dir)))
    deadline = time.monotonic() + 20
    while any(fake.poll(_ref(admin, a), f"one-{v}").state != "missing" for v in vms):
        assert time.monotonic() < deadline, "stale guests still on the fenced host"
        time.sleep(0.1)
    assert all(fake.poll(_ref(admin, b), f"one-{v}").state == "running" for v in vms)
    extra = admin.vms.create(template={"CPU": 1, "MEMORY": 64, "SCHED_REQUIREMENTS": f"ID = {a}"})
    time.sleep(0.5)
    assert admin.vms.get(extra.id).state_name == "PENDING"
    admin.hosts.status(a, "enabled")  # the admin vouches for it: fence lifted
    wait_vms(admin, [extra.id], lambda s: s == RUNNING)


def test_host_failure_without_policy_leaves_vms_unknown(admin: Client) -> None:
    a, _b, vms = _setup(admin, "keep-site", recreate=False)
    admin.hosts.update(a, template={"FAKE_DOWN": "YES"})
    wait_vms(admin, vms, lambda s: s == "ACTIVE/UNKNOWN")
    time.sleep(1.5)  # past the grace period: nothing is recreated
    assert {admin.vms.get(v).host_id for v in vms} == {a}
    assert not admin.hosts.get(a).fenced
    admin.hosts.update(a, template={})
    wait_vms(admin, vms, lambda s: s == RUNNING)  # back, and its guests were still there


def _ref(admin: Client, host_id: int) -> object:
    from edgecloud.drivers.base import HostRef

    host = admin.hosts.get(host_id)
    return HostRef(id=host.id, name=host.name)
