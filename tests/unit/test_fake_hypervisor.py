"""Unit tests for the scriptable fake hypervisor (in memory and on disk) and its registration."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgecloud.drivers import registry
from edgecloud.drivers.base import (
    DriverError,
    GuestSpec,
    HostRef,
    HostUnreachable,
    Hypervisor,
    NicHotplug,
)
from edgecloud.drivers.fake import FakeHypervisor, read_deploy_counts

pytestmark = pytest.mark.unit

HOST = HostRef(id=0, name="host0")


def spec(vm_id: int, **template: str) -> GuestSpec:
    return GuestSpec(
        vm_id=vm_id, name=f"vm{vm_id}", template={"CPU": "1", "MEMORY": "512", **template}
    )


@pytest.fixture(params=["memory", "disk"])
def fake(request: pytest.FixtureRequest, tmp_path: Path) -> FakeHypervisor:
    return FakeHypervisor(None if request.param == "memory" else tmp_path / "state")


def test_fake_hypervisor_is_a_hypervisor(fake: FakeHypervisor) -> None:
    assert isinstance(fake, Hypervisor)


def test_fake_deploy_runs_the_guest(fake: FakeHypervisor) -> None:
    deploy_id = fake.deploy(HOST, spec(7))
    assert deploy_id == "fake-7"
    status = fake.poll(HOST, deploy_id)
    assert (status.vm_id, status.state) == (7, "running")
    assert status.figures["cpu"] == 1.0
    assert status.figures["memory_mb"] == 512.0
    assert fake.deploy_count(HOST, 7) == 1


def test_fake_deploy_is_idempotent(fake: FakeHypervisor) -> None:
    assert fake.deploy(HOST, spec(7)) == fake.deploy(HOST, spec(7)) == "fake-7"
    assert fake.deploy_count(HOST, 7) == 1
    assert fake.deploy_count("host0", 7) == 1


def test_fake_shutdown_removes_the_guest(fake: FakeHypervisor) -> None:
    fake.deploy(HOST, spec(7))
    fake.shutdown(HOST, "fake-7", hard=False)
    assert fake.poll(HOST, "fake-7").state == "missing"
    fake.shutdown(HOST, "fake-7", hard=True)  # already stopped: nothing to do
    fake.shutdown(HOST, "not-a-fake-id", hard=True)
    assert fake.deploy_count(HOST, 7) == 1  # the counter outlives the guest


def test_fake_deploy_after_shutdown_counts_again(fake: FakeHypervisor) -> None:
    fake.deploy(HOST, spec(7))
    fake.shutdown(HOST, "fake-7", hard=False)
    fake.deploy(HOST, spec(7))
    assert fake.deploy_count(HOST, 7) == 2


def test_fake_reboot_keeps_the_guest_running(fake: FakeHypervisor) -> None:
    fake.deploy(HOST, spec(7))
    fake.reboot(HOST, "fake-7", hard=False)
    fake.reboot(HOST, "fake-7", hard=True)
    assert fake.poll(HOST, "fake-7").state == "running"
    assert fake.reboot_count(HOST, 7) == 2


def test_fake_reboot_of_a_missing_guest_fails(fake: FakeHypervisor) -> None:
    with pytest.raises(DriverError, match="missing"):
        fake.reboot(HOST, "fake-7", hard=False)


def test_fake_save_and_restore(fake: FakeHypervisor) -> None:
    fake.deploy(HOST, spec(7))
    fake.save(HOST, "fake-7")
    fake.save(HOST, "fake-7")  # already saved
    saved = fake.poll(HOST, "fake-7")
    assert (saved.state, dict(saved.figures)) == ("saved", {})
    assert fake.probe(HOST).used_cpu == 0.0
    with pytest.raises(DriverError, match="saved"):
        fake.reboot(HOST, "fake-7", hard=False)
    fake.restore(HOST, "fake-7")
    fake.restore(HOST, "fake-7")  # already running
    assert fake.poll(HOST, "fake-7").state == "running"
    assert fake.deploy_count(HOST, 7) == 1


def test_fake_save_or_restore_of_a_missing_guest_fails(fake: FakeHypervisor) -> None:
    with pytest.raises(DriverError):
        fake.save(HOST, "fake-7")
    with pytest.raises(DriverError):
        fake.restore(HOST, "fake-7")


def test_fake_cleanup_removes_running_or_saved_guests(fake: FakeHypervisor) -> None:
    fake.deploy(HOST, spec(1))
    fake.deploy(HOST, spec(2))
    fake.save(HOST, "fake-2")
    fake.cleanup(HOST, "fake-1")
    fake.cleanup(HOST, "fake-2")
    fake.cleanup(HOST, "fake-3")  # never there
    assert fake.poll_all(HOST) == []


def test_fake_poll_of_unknown_deploy_ids_is_missing(fake: FakeHypervisor) -> None:
    assert fake.poll(HOST, "fake-99").state == "missing"
    assert fake.poll(HOST, "one-99").state == "missing"
    assert fake.poll(HostRef(id=5, name="never-seen"), "fake-1").state == "missing"


def test_fake_poll_all_reports_guests_with_growing_traffic(fake: FakeHypervisor) -> None:
    for vm_id in (3, 1, 2):
        fake.deploy(HOST, spec(vm_id))
    fake.save(HOST, "fake-2")
    first = fake.poll_all(HOST)
    assert [(s.vm_id, s.state) for s in first] == [(1, "running"), (2, "saved"), (3, "running")]
    time.sleep(0.02)
    later = fake.poll_all(HOST)
    assert later[0].figures["net_rx"] > first[0].figures["net_rx"]
    assert later[0].figures["net_tx"] > first[0].figures["net_tx"]
    assert fake.poll_all(HostRef(id=1, name="other")) == []


def test_fake_probe_defaults_and_usage(fake: FakeHypervisor) -> None:
    fake.deploy(HOST, spec(1, CPU="0.5", MEMORY="256"))
    fake.deploy(HOST, spec(2, CPU="2", MEMORY="1024"))
    facts = fake.probe(HOST)
    assert (facts.total_cpu, facts.total_memory_mb) == (8.0, 16384)
    assert (facts.used_cpu, facts.used_memory_mb) == (2.5, 1280)
    assert facts.hypervisors == ("fake", "kvm", "lxc", "microvm")
    assert facts.free_disk_mb >= 1 << 20


def test_fake_probe_reads_the_host_template(fake: FakeHypervisor) -> None:
    plain = HostRef(id=1, name="h1", attributes={"CPU": "32", "MEMORY": "65536"})
    scripted = HostRef(
        id=2, name="h2", attributes={"CPU": "32", "FAKE_CPU": "4", "FAKE_MEMORY": "2048"}
    )
    assert (fake.probe(plain).total_cpu, fake.probe(plain).total_memory_mb) == (32.0, 65536)
    assert (fake.probe(scripted).total_cpu, fake.probe(scripted).total_memory_mb) == (4.0, 2048)


def test_fake_down_host_is_unreachable_for_every_call(fake: FakeHypervisor) -> None:
    fake.deploy(HOST, spec(7))
    down = HostRef(id=0, name="host0", attributes={"FAKE_DOWN": "yes"})
    calls: list[Callable[[], Any]] = [
        lambda: fake.probe(down),
        lambda: fake.deploy(down, spec(8)),
        lambda: fake.shutdown(down, "fake-7", hard=True),
        lambda: fake.reboot(down, "fake-7", hard=True),
        lambda: fake.save(down, "fake-7"),
        lambda: fake.restore(down, "fake-7"),
        lambda: fake.cleanup(down, "fake-7"),
        lambda: fake.poll(down, "fake-7"),
        lambda: fake.poll_all(down),
    ]
    for call in calls:
        with pytest.raises(HostUnreachable, match="fake host host0 is down"):
            call()
    assert fake.poll(HOST, "fake-7").state == "running"  # back up: the guest kept running


def test_fake_fail_deploy_fails_every_time(fake: FakeHypervisor) -> None:
    for _ in range(3):
        with pytest.raises(DriverError, match="deploy of VM 7 failed"):
            fake.deploy(HOST, spec(7, FAKE_FAIL="deploy"))
    assert fake.poll(HOST, "fake-7").state == "missing"
    assert fake.deploy_count(HOST, 7) == 0


def test_fake_fail_times_then_succeeds(fake: FakeHypervisor) -> None:
    scripted = spec(7, FAKE_FAIL="deploy, save", FAKE_FAIL_TIMES="2")
    for _ in range(2):
        with pytest.raises(DriverError):
            fake.deploy(HOST, scripted)
    assert fake.deploy(HOST, scripted) == "fake-7"
    with pytest.raises(DriverError, match="save"):  # each action has its own N failures
        fake.save(HOST, "fake-7")
    assert fake.poll(HOST, "fake-7").state == "running"
    with pytest.raises(DriverError):
        fake.save(HOST, "fake-7")
    fake.save(HOST, "fake-7")
    assert fake.poll(HOST, "fake-7").state == "saved"
    assert fake.deploy_count(HOST, 7) == 1


@pytest.mark.parametrize("action", ["shutdown", "reboot", "save", "cleanup"])
def test_fake_fail_other_actions_leave_the_guest_as_it_was(
    fake: FakeHypervisor, action: str
) -> None:
    fake.deploy(HOST, spec(7, FAKE_FAIL=action))
    calls: dict[str, Callable[[], None]] = {
        "shutdown": lambda: fake.shutdown(HOST, "fake-7", hard=False),
        "reboot": lambda: fake.reboot(HOST, "fake-7", hard=False),
        "save": lambda: fake.save(HOST, "fake-7"),
        "cleanup": lambda: fake.cleanup(HOST, "fake-7"),
    }
    with pytest.raises(DriverError, match=action):
        calls[action]()
    assert fake.poll(HOST, "fake-7").state == "running"
    assert fake.reboot_count(HOST, 7) == 0


def test_fake_fail_restore(fake: FakeHypervisor) -> None:
    fake.deploy(HOST, spec(7, FAKE_FAIL="restore", FAKE_FAIL_TIMES="1"))
    fake.save(HOST, "fake-7")
    with pytest.raises(DriverError, match="restore"):
        fake.restore(HOST, "fake-7")
    assert fake.poll(HOST, "fake-7").state == "saved"
    fake.restore(HOST, "fake-7")
    assert fake.poll(HOST, "fake-7").state == "running"


def test_fake_nic_hotplug(fake: FakeHypervisor) -> None:
    assert isinstance(fake, NicHotplug)
    with pytest.raises(DriverError, match="not running"):
        fake.attach_nic(HOST, "fake-8", {}, 0)
    fake.deploy(HOST, spec(8))
    fake.attach_nic(HOST, "fake-8", {}, 1)
    fake.attach_nic(HOST, "fake-8", {}, 0)
    fake.attach_nic(HOST, "fake-8", {}, 1)  # idempotent
    assert fake.nics(HOST, 8) == [0, 1]
    fake.detach_nic(HOST, "fake-8", 1)
    fake.detach_nic(HOST, "fake-8", 5)  # a NIC it does not have: nothing to do
    assert fake.nics(HOST, 8) == [0]


def test_fake_fail_nic_attach(fake: FakeHypervisor) -> None:
    fake.deploy(HOST, spec(9, FAKE_FAIL="nic_attach", FAKE_FAIL_TIMES="1"))
    with pytest.raises(DriverError, match="failed as scripted"):
        fake.attach_nic(HOST, "fake-9", {}, 0)
    assert fake.nics(HOST, 9) == []
    fake.attach_nic(HOST, "fake-9", {}, 0)
    assert fake.nics(HOST, 9) == [0]


def test_fake_bad_script_values_are_driver_errors(fake: FakeHypervisor) -> None:
    with pytest.raises(DriverError, match="FAKE_FAIL names unknown"):
        fake.deploy(HOST, spec(7, FAKE_FAIL="deplyo"))
    with pytest.raises(DriverError, match="FAKE_DEPLOY_DELAY must be a number"):
        fake.deploy(HOST, spec(7, FAKE_DEPLOY_DELAY="soon"))
    with pytest.raises(DriverError, match="FAKE_VANISH_AFTER"):
        fake.deploy(HOST, spec(7, FAKE_VANISH_AFTER="-1"))


def test_fake_deploy_delay(fake: FakeHypervisor) -> None:
    started = time.perf_counter()
    fake.deploy(HOST, spec(7, FAKE_DEPLOY_DELAY="0.1"))
    assert time.perf_counter() - started >= 0.1
    started = time.perf_counter()
    fake.deploy(HOST, spec(7, FAKE_DEPLOY_DELAY="0.1"))  # already running: no delay
    assert time.perf_counter() - started < 0.05


def test_fake_action_delay(fake: FakeHypervisor) -> None:
    fake.deploy(HOST, spec(7, FAKE_ACTION_DELAY="0.05"))
    started = time.perf_counter()
    fake.reboot(HOST, "fake-7", hard=False)
    fake.shutdown(HOST, "fake-7", hard=False)
    assert time.perf_counter() - started >= 0.1


def test_fake_delayed_deploys_overlap(fake: FakeHypervisor) -> None:
    threads = [
        threading.Thread(target=fake.deploy, args=(HOST, spec(i, FAKE_DEPLOY_DELAY="0.2")))
        for i in range(4)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.perf_counter() - started < 0.6  # not 4 x 0.2 s behind the host's lock
    assert len(fake.poll_all(HOST)) == 4


def test_fake_vanish_after(fake: FakeHypervisor) -> None:
    fake.deploy(HOST, spec(7, FAKE_VANISH_AFTER="0.05"))
    fake.deploy(HOST, spec(8))
    assert fake.poll(HOST, "fake-7").state == "running"
    time.sleep(0.08)
    assert fake.poll(HOST, "fake-7").state == "missing"
    assert [s.vm_id for s in fake.poll_all(HOST)] == [8]
    assert fake.probe(HOST).used_cpu == 1.0
    with pytest.raises(DriverError, match="missing"):
        fake.reboot(HOST, "fake-7", hard=False)
    fake.deploy(HOST, spec(7))  # the vanished guest can be deployed again
    assert fake.deploy_count(HOST, 7) == 2
    assert fake.poll(HOST, "fake-7").state == "running"


def test_fake_concurrent_deploys_on_one_host(fake: FakeHypervisor) -> None:
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for vm_id in range(50):
                fake.deploy(HOST, spec(vm_id))  # every worker deploys every VM
                fake.deploy(HOST, spec(1000 + worker * 50 + vm_id))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(fake.poll_all(HOST)) == 50 + 8 * 50
    assert all(fake.deploy_count(HOST, vm_id) == 1 for vm_id in range(50))
    assert fake.probe(HOST).used_memory_mb == 450 * 512


def test_fake_state_survives_a_front_end_restart(tmp_path: Path) -> None:
    before = FakeHypervisor(tmp_path)
    before.deploy(HOST, spec(1, FAKE_FAIL="save", FAKE_FAIL_TIMES="1"))
    before.deploy(HOST, spec(2))
    before.save(HOST, "fake-2")
    before.deploy(HostRef(id=1, name="host1"), spec(3))
    with pytest.raises(DriverError):
        before.save(HOST, "fake-1")

    after = FakeHypervisor(tmp_path)  # the front-end restarted; the hosts did not
    assert [(s.vm_id, s.state) for s in after.poll_all(HOST)] == [(1, "running"), (2, "saved")]
    assert after.deploy(HOST, spec(1)) == "fake-1"  # repeated deploy: found running
    after.save(HOST, "fake-1")  # its one scripted failure was spent before the restart
    after.restore(HOST, "fake-2")
    assert after.poll(HOST, "fake-2").state == "running"
    assert read_deploy_counts(tmp_path) == {1: 1, 2: 1, 3: 1}


def test_fake_state_files_are_one_json_per_guest(tmp_path: Path) -> None:
    fake = FakeHypervisor(tmp_path)
    fake.deploy(HostRef(id=1, name="edge/1"), spec(4))
    fake.deploy(HostRef(id=2, name="edge-2"), spec(5))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/*.json")) == [
        "edge%2F1/4.json",
        "edge-2/5.json",
    ]
    assert not list(tmp_path.glob("*/*.tmp"))


def test_read_deploy_counts_sums_over_hosts(tmp_path: Path) -> None:
    fake = FakeHypervisor(tmp_path)
    for name in ("a", "b"):
        fake.deploy(HostRef(id=0, name=name), spec(9))
    fake.deploy(HostRef(id=0, name="a"), spec(9))  # idempotent: not counted
    with pytest.raises(DriverError):
        fake.deploy(HostRef(id=0, name="a"), spec(10, FAKE_FAIL="deploy"))
    assert read_deploy_counts(tmp_path) == {9: 2}
    assert read_deploy_counts(tmp_path / "nothing-here") == {}


def test_fake_in_memory_scale_10000_hosts(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeHypervisor()
    hosts = [HostRef(id=i, name=f"host{i}") for i in range(10_000)]
    specs = [spec(vm_id) for vm_id in range(100_000)]
    started = time.perf_counter()
    for vm_id, guest in enumerate(specs):
        fake.deploy(hosts[vm_id % 10_000], guest)
    deployed = time.perf_counter() - started
    started = time.perf_counter()
    polled = sum(len(fake.poll_all(host)) for host in hosts)
    probed = sum(fake.probe(host).used_memory_mb for host in hosts)
    monitored = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\nfake hypervisor in memory: 100,000 deploys on 10,000 hosts {deployed:.2f}s"
            f" ({deployed / 100_000 * 1e6:.1f} us each); poll_all+probe of every host"
            f" {monitored:.2f}s"
        )
    assert polled == 100_000
    assert probed == 100_000 * 512
    assert deployed + monitored < 10.0


def test_registry_creates_the_fake_hypervisor(tmp_path: Path) -> None:
    assert "fake" in registry.available("hypervisor")
    in_memory = registry.create("hypervisor", "fake")
    on_disk = registry.create("hypervisor", "fake", state_dir=tmp_path)
    assert isinstance(in_memory, FakeHypervisor)
    assert isinstance(on_disk, FakeHypervisor)
    assert on_disk.state_dir == tmp_path
    with pytest.raises(LookupError, match="fake"):
        registry.create("hypervisor", "no-such-driver")


def test_registry_imports_the_fake_on_first_use() -> None:
    code = (
        "import sys; from edgecloud.drivers import registry; "
        "assert 'edgecloud.drivers.fake' not in sys.modules; "
        "print(type(registry.create('hypervisor', 'fake')).__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "FakeHypervisor"
