"""The lifecycle on fake hosts: placement, boot, power cycles, failures, recovery."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edgecloud.client import Client, EdgecloudError
from edgecloud.drivers.fake import read_deploy_counts
from tests.support.frontend import RunningFrontEnd
from tests.support.waiting import wait_operation, wait_vms

Unique = Callable[[str], str]
RUNNING = "ACTIVE/RUNNING"


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> dict[str, object]:
    """Run the loops fast, with the fake hosts' state in a temp dir (one per backend)."""
    return {
        "scheduler_interval": 0.1,
        "monitor_interval": 0.3,
        "host_error_after": 2,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake-hosts")),
        "workers": 8,
    }


@pytest.fixture(scope="module")
def fake_hosts(admin: Client) -> list[int]:
    """Register four fake hosts of 16 CPU / 32 GiB in a cluster of their own."""
    cluster = admin.clusters.create(name="fake-site")
    return [
        admin.hosts.create(
            name=f"fake-{i}",
            cluster_id=cluster.id,
            hypervisor="fake",
            total_cpu=16,
            total_memory_mb=32768,
        ).id
        for i in range(4)
    ]


def test_lifecycle_200_vms_through_every_state(
    admin: Client, fake_hosts: list[int], frontend: RunningFrontEnd
) -> None:
    failing = {"FAKE_FAIL": "deploy", "FAKE_FAIL_TIMES": "1"}
    ids, bad = [], []
    for n in range(200):
        template: dict[str, object] = {
            "NAME": f"life-{n}",
            "CPU": 0.25,
            "MEMORY": 64,
            "HYPERVISOR": "kvm",
        }
        if n % 20 == 0:
            template.update(failing)
            bad.append(n)
        ids.append(admin.vms.create(template=template).id)
    failed_ids = [ids[n] for n in bad]
    states = wait_vms(admin, ids, lambda s: s in (RUNNING, "ACTIVE/BOOT_FAILURE"))
    assert {states[i] for i in failed_ids} == {"ACTIVE/BOOT_FAILURE"}
    assert all(s == RUNNING for i, s in states.items() if i not in failed_ids)
    assert "failed as scripted" in admin.vms.get(failed_ids[0]).error

    for vm_id in failed_ids:
        admin.vms.action(vm_id, "recover", recover="retry")
    wait_vms(admin, ids, lambda s: s == RUNNING)

    for vm_id in ids:
        admin.vms.action(vm_id, "poweroff")
    wait_vms(admin, ids, lambda s: s == "POWEROFF")
    for vm_id in ids:
        admin.vms.action(vm_id, "resume")
    wait_vms(admin, ids, lambda s: s == RUNNING)
    for vm_id in ids:
        admin.vms.action(vm_id, "terminate")
    wait_vms(admin, ids, lambda s: s == "DONE")

    hosts = [admin.hosts.get(h) for h in fake_hosts]
    assert all(h.running_vms == 0 and h.used_cpu == 0 and h.used_memory_mb == 0 for h in hosts)
    counts = read_deploy_counts(Path(str(frontend.settings.fake_state_dir)))
    # one deploy each, one more after poweroff/resume; the failed first attempts count none
    assert all(counts.get(vm_id) == 2 for vm_id in ids), {
        i: counts.get(i) for i in ids if counts.get(i) != 2
    }


def test_placement_spreads_and_respects_capacity(admin: Client, fake_hosts: list[int]) -> None:
    ids = [admin.vms.create(template={"CPU": 4, "MEMORY": 1024}).id for _ in range(17)]
    deadline = time.monotonic() + 60
    while sum(s == RUNNING for s in wait_vms(admin, ids, lambda s: True).values()) < 16:
        assert time.monotonic() < deadline, "16 VMs did not reach RUNNING"
        time.sleep(0.1)
    time.sleep(0.5)  # a few more scheduling rounds: the 17th must still wait
    placed = [admin.vms.get(i) for i in ids]
    running = [v for v in placed if v.host_id is not None]
    assert len(running) == 16  # 4 hosts x 16 CPU / 4 CPU: the 17th waits
    waiting = [v for v in placed if v.host_id is None]
    assert waiting[0].state_name == "PENDING" and "CPU" in waiting[0].error
    per_host = {h: sum(1 for v in running if v.host_id == h) for h in fake_hosts}
    assert set(per_host.values()) == {4}
    # The waiting one first: capacity the others free would get it placed meanwhile, and a
    # VM whose deploy is in progress cannot be terminated (409).
    for vm in waiting + running:
        admin.vms.action(vm.id, "terminate")
    wait_vms(admin, ids, lambda s: s == "DONE")


def test_sched_requirements_choose_the_host(admin: Client, fake_hosts: list[int]) -> None:
    target = admin.hosts.get(fake_hosts[2])
    vm = admin.vms.create(
        template={"CPU": 1, "MEMORY": 64, "SCHED_REQUIREMENTS": f'NAME = "{target.name}"'}
    )
    wait_vms(admin, [vm.id], lambda s: s == RUNNING)
    assert admin.vms.get(vm.id).host_id == target.id
    with pytest.raises(EdgecloudError) as err:
        admin.vms.create(template={"CPU": 1, "SCHED_REQUIREMENTS": "FREE_CPU > & 3"})
    assert err.value.status == 422 and err.value.field == "template.SCHED_REQUIREMENTS"
    admin.vms.action(vm.id, "terminate")


def test_suspend_stop_undeploy_resume_migrate(admin: Client, fake_hosts: list[int]) -> None:
    vm = admin.vms.create(template={"CPU": 1, "MEMORY": 64})
    wait_vms(admin, [vm.id], lambda s: s == RUNNING)
    for action, rests in (
        ("suspend", "SUSPENDED"),
        ("resume", RUNNING),
        ("stop", "STOPPED"),
        ("resume", RUNNING),
        ("undeploy", "UNDEPLOYED"),
        ("resume", RUNNING),
    ):
        admin.vms.action(vm.id, action)
        wait_vms(admin, [vm.id], lambda s, r=rests: s == r)
    source = admin.vms.get(vm.id).host_id
    target = next(h for h in fake_hosts if h != source)
    op = admin.vms.action(vm.id, "migrate", host_id=target).operation
    assert op is not None
    assert wait_operation(admin, op.id) == "done"
    assert admin.vms.get(vm.id).host_id == target
    other = next(h for h in fake_hosts if h not in (source, target))
    op = admin.vms.action(vm.id, "migrate", host_id=other, live=True).operation
    assert op is not None
    assert wait_operation(admin, op.id) == "done"
    assert admin.vms.get(vm.id).host_id == other
    history = [h.action for h in admin.vms.history(vm.id)]
    assert "migrate_live" in history and "restore_target" in history
    admin.vms.action(vm.id, "terminate", hard=True)
    wait_vms(admin, [vm.id], lambda s: s == "DONE")


def test_vanished_guest_is_reconciled_to_poweroff(admin: Client, fake_hosts: list[int]) -> None:
    vm = admin.vms.create(template={"CPU": 1, "MEMORY": 64, "FAKE_VANISH_AFTER": "0.5"})
    wait_vms(admin, [vm.id], lambda s: s == "POWEROFF", timeout=30)
    assert "not running" in admin.vms.get(vm.id).error
    admin.vms.action(vm.id, "terminate")


def test_operations_record_steps(admin: Client, fake_hosts: list[int]) -> None:
    vm = admin.vms.create(template={"CPU": 1, "MEMORY": 64})
    wait_vms(admin, [vm.id], lambda s: s == RUNNING)
    accepted = admin.vms.action(vm.id, "terminate")
    assert accepted.operation is not None
    wait_vms(admin, [vm.id], lambda s: s == "DONE")
    op = admin.operations.get(accepted.operation.id)
    assert op.state == "done"
    assert [(s.name, s.state) for s in op.steps] == [
        ("shutdown", "done"),
        ("epilog", "done"),
        ("cleanup", "done"),
    ]


def test_monitoring_samples_are_kept(admin: Client, fake_hosts: list[int]) -> None:
    vm = admin.vms.create(template={"CPU": 2, "MEMORY": 256})
    wait_vms(admin, [vm.id], lambda s: s == RUNNING)
    deadline = time.monotonic() + 10
    while not admin.vms.monitoring(vm.id):
        assert time.monotonic() < deadline, "no VM samples"
        time.sleep(0.1)
    sample = admin.vms.monitoring(vm.id)[-1]
    assert (sample.cpu, sample.memory_mb) == (2.0, 256) and sample.net_rx >= 0
    host_samples = admin.hosts.monitoring(admin.vms.get(vm.id).host_id or 0)
    assert host_samples and host_samples[-1].cpu >= 2.0
    admin.vms.action(vm.id, "terminate")


def test_metrics_expose_states_and_latencies(
    frontend: RunningFrontEnd, admin: Client, fake_hosts: list[int]
) -> None:
    import httpx

    headers = {"Authorization": admin.http.headers["Authorization"]}
    text = httpx.get(frontend.url + "/api/v1/metrics", headers=headers).text
    assert 'edgecloud_hosts{state="MONITORED"}' in text
    assert "edgecloud_operation_seconds_bucket" in text
    assert "edgecloud_scheduler_round_seconds_count" in text
    assert "edgecloud_api_request_seconds_bucket" in text
