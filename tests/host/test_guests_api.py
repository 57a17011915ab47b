"""Real guests through the REST API on two namespace hosts reached over real SSH.

A kvm VM (QEMU, TCG here) and an unprivileged LXC container go through their lifecycle;
each is RUNNING only once the guest really started (its ready marker on the console, an
exec in the container). Then the failures: a killed QEMU, a host whose sshd is gone and
comes back, a host whose SSH key changed. The fixtures (tiny, frontend, admin, hosts) are
in conftest.py.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from edgecloud.api.infra import Host
from edgecloud.client import Client
from tests.support.guests import (
    BOOT,
    add_host,
    attach,
    create_on,
    guest_processes,
    leftovers,
    wait_for,
)
from tests.support.nethosts import NetHost
from tests.support.waiting import wait_operation, wait_vms


def test_probe_reports_the_real_host_and_pins_its_key(
    hosts: list[Host], two_hosts: list[NetHost]
) -> None:
    for host, net in zip(hosts, two_hosts, strict=True):
        assert host.host_key == net.host_key
        assert host.transport == "ssh"
        assert host.address == net.address
        assert host.total_cpu == float(os.cpu_count() or 1)
        meminfo = Path("/proc/meminfo").read_text().split()
        assert host.total_memory_mb == int(meminfo[meminfo.index("MemTotal:") + 1]) // 1024
        assert {"kvm", "lxc", "microvm"} <= set(host.hypervisors)
        assert host.node_version
        assert host.template["KVM"] == "NO"  # /dev/kvm hangs here: the boot probe says so
        assert (net.root / "node.pyz").exists()


def test_kvm_vm_lifecycle(admin: Client, hosts: list[Host], two_hosts: list[NetHost]) -> None:
    host, net = hosts[0], two_hosts[0]
    vm = create_on(admin, "tiny-vm", host)
    wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING", timeout=BOOT)
    running = admin.vms.get(vm.id)
    assert running.host_id == host.id
    assert running.deploy_id == f"one-{vm.id}"
    # RUNNING means booted: the marker was on the console before the deploy returned.
    assert "EDGECLOUD-READY" in admin.vms.console_log(vm.id)
    assert len([p for p in guest_processes(net) if running.deploy_id in p]) == 1
    wait_for("accel recorded", lambda: admin.vms.get(vm.id).runtime.get("accel") == "tcg")

    admin.vms.action(vm.id, "poweroff")
    wait_vms(admin, [vm.id], lambda s: s == "POWEROFF", timeout=60)
    assert not [p for p in guest_processes(net) if running.deploy_id in p]
    admin.vms.action(vm.id, "resume")
    wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING", timeout=BOOT)
    reboot(admin, vm.id, hard=True)
    admin.vms.action(vm.id, "terminate", hard=True)
    wait_vms(admin, [vm.id], lambda s: s == "DONE", timeout=60)
    assert leftovers(net, running.deploy_id) == []


def test_microvm_boots_and_terminates(
    admin: Client, hosts: list[Host], two_hosts: list[NetHost]
) -> None:
    host, net = hosts[0], two_hosts[0]
    vm = create_on(admin, "tiny-microvm", host)
    wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING", timeout=BOOT)
    deploy_id = admin.vms.get(vm.id).deploy_id
    assert "EDGECLOUD-READY" in admin.vms.console_log(vm.id)
    (line,) = [p for p in guest_processes(net) if deploy_id in p]
    assert "microvm" in line
    admin.vms.action(vm.id, "terminate", hard=True)
    wait_vms(admin, [vm.id], lambda s: s == "DONE", timeout=60)
    assert leftovers(net, deploy_id) == []


def test_lxc_container_lifecycle(
    admin: Client, hosts: list[Host], two_hosts: list[NetHost]
) -> None:
    host, net = hosts[1], two_hosts[1]
    vm = create_on(admin, "tiny-container", host)
    wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING", timeout=BOOT)
    deploy_id = admin.vms.get(vm.id).deploy_id
    # Really started: a command runs inside the container, in the host's namespace.
    inside = attach(net, deploy_id, ["cat", "/proc/1/comm"])
    assert inside.returncode == 0, inside.stderr
    assert wait_for(
        "privileged flag", lambda: "privileged" in (r := admin.vms.get(vm.id).runtime) and r
    ) == {"kind": "lxc", "privileged": False}
    # Unprivileged: root inside is an unprivileged uid outside.
    uid_map = attach(net, deploy_id, ["cat", "/proc/self/uid_map"]).stdout.split()
    assert uid_map[:2] == ["0", uid_map[1]] and uid_map[1] != "0"

    admin.vms.action(vm.id, "poweroff")
    wait_vms(admin, [vm.id], lambda s: s == "POWEROFF", timeout=60)
    admin.vms.action(vm.id, "resume")
    wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING", timeout=BOOT)
    reboot(admin, vm.id, hard=False)
    assert attach(net, deploy_id, ["true"]).returncode == 0
    admin.vms.action(vm.id, "terminate")
    wait_vms(admin, [vm.id], lambda s: s == "DONE", timeout=60)
    assert leftovers(net, deploy_id) == []


def test_a_killed_qemu_is_noticed_by_the_monitor(
    admin: Client, hosts: list[Host], two_hosts: list[NetHost]
) -> None:
    host, net = hosts[0], two_hosts[0]
    vm = create_on(admin, "tiny-vm", host)
    try:
        wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING", timeout=BOOT)
        deploy_id = admin.vms.get(vm.id).deploy_id
        (pid,) = [int(p.split()[0]) for p in guest_processes(net) if deploy_id in p]
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        wait_vms(admin, [vm.id], lambda s: s == "POWEROFF", timeout=10)
        assert time.monotonic() - started < 5  # one probe period is 1 s here
        assert "not running" in admin.vms.get(vm.id).error
    finally:
        admin.vms.action(vm.id, "terminate", hard=True)
        wait_vms(admin, [vm.id], lambda s: s == "DONE", timeout=60)


def test_a_host_that_stops_answering_goes_error_and_comes_back(
    admin: Client, hosts: list[Host], two_hosts: list[NetHost]
) -> None:
    host, net = hosts[1], two_hosts[1]
    vm = create_on(admin, "tiny-container", host)
    wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING", timeout=BOOT)
    net.stop_sshd()
    try:
        wait_for("host ERROR", lambda: admin.hosts.get(host.id).state_name == "ERROR", 30)
        wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/UNKNOWN", timeout=30)
        assert "cannot connect" in admin.hosts.get(host.id).last_error
    finally:
        net.start_sshd()
    # Back: the container kept running on the host, and the store learns it again.
    wait_for("host MONITORED", lambda: admin.hosts.get(host.id).state_name == "MONITORED", 30)
    wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING", timeout=30)
    admin.vms.action(vm.id, "terminate", hard=True)
    wait_vms(admin, [vm.id], lambda s: s == "DONE", timeout=60)


def test_a_changed_host_key_is_refused(admin: Client, nethosts: Any) -> None:
    (net,) = nethosts(1)
    host = add_host(admin, net)
    pinned = admin.hosts.get(host.id).host_key
    net.regenerate_host_key()
    wait_for("host ERROR", lambda: admin.hosts.get(host.id).state_name == "ERROR", 30)
    refused = admin.hosts.get(host.id)
    assert "host key" in refused.last_error and "changed" in refused.last_error
    assert refused.host_key == pinned  # never re-pinned behind the operator's back
    admin.hosts.delete(host.id)


def reboot(admin: Client, vm_id: int, *, hard: bool) -> None:
    """Reboot and wait for the operation (a rebooting VM stays ACTIVE/RUNNING)."""
    op = admin.vms.action(vm_id, "reboot", hard=hard).operation
    assert op is not None
    assert wait_operation(admin, op.id, timeout=BOOT) == "done"
    assert admin.vms.get(vm_id).lcm_state_name == "RUNNING"
