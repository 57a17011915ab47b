"""NICs hot-plugged into running guests through the REST API, on two namespace hosts.

A VM on host A has a NIC on a vxlan vnet (its address applied at boot from its context);
a container on host B starts without one. A NIC attached to the running container is
there at once (eth0 with its lease's address) and reaches the VM, also after a restart
(its LXC config has it). A NIC attached to the running VM is a virtio-net device in QEMU
(QMP) on a tap that is a port of the vnet's bridge, still there after suspend and resume
(the restore rebuilds the same machine); detached, device and tap are gone. The
container's NIC detached: its veth is gone and the ping fails. Then the guests end and
nothing of the network is left on either host.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from edgecloud.api.infra import Host
from edgecloud.client import Client
from edgecloud.node import qmp
from tests.support.guests import BOOT, attach, guest_octet, network_leftovers, wait_for
from tests.support.nethosts import NetHost
from tests.support.waiting import wait_operation, wait_vms


def _template_id(admin: Client, name: str) -> int:
    (found,) = [t for t in admin.templates.list() if t.name == name]
    return found.id


def _guest(admin: Client, template: str, host: Host, nics: list[dict[str, str]]) -> Any:
    extra: dict[str, Any] = {"SCHED_REQUIREMENTS": f"ID={host.id}", "CONTEXT": {"NETWORK": "YES"}}
    if nics:
        extra["NIC"] = nics
    return admin.vms.create(template_id=_template_id(admin, template), template=extra)


def _pings(net: NetHost, deploy_id: str, address: str) -> bool:
    done = attach(net, deploy_id, ["ping", "-c", "1", "-W", "1", address])
    return bool(done.returncode == 0)


def _link(net: NetHost, name: str) -> dict[str, Any] | None:
    done = net.exec(["ip", "-j", "link", "show", "dev", name])
    found = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else []
    return found[0] if found else None


def _qemu_nics(guest_dir: Path) -> list[str]:
    """Return the ids of the devices QEMU has on the guest's named peripherals."""
    children = qmp.execute(guest_dir, "qom-list", {"path": "/machine/peripheral"})
    return sorted(c["name"] for c in children if str(c["type"]).startswith("child<virtio-net"))


def _timed(admin: Client, call: Any) -> float:
    """Run an attach/detach call; wait for its operation to succeed; return the seconds."""
    started = time.monotonic()
    op = call().operation
    assert op is not None
    state = wait_operation(admin, op.id, timeout=120)
    assert state == "done", admin.operations.get(op.id).error
    return time.monotonic() - started


def test_nics_hot_plugged_into_a_running_container_and_vm(
    admin: Client, hosts: list[Host], two_hosts: list[NetHost]
) -> None:
    subnet = f"198.18.{guest_octet(two_hosts, 230)}"  # not the hosts' own /24
    group = admin.secgroups.create(
        name="hotplug-icmp", rules=[{"protocol": "TCP", "range": "22"}, {"protocol": "ICMP"}]
    )
    vnet = admin.vnets.create(
        name="hotplug",
        driver="vxlan",
        security_groups=[group.id],
        address_ranges=[{"type": "IP4", "ip": f"{subnet}.10", "size": 20}],
        template={"NETWORK_ADDRESS": f"{subnet}.0", "NETWORK_MASK": "255.255.255.0"},
    )
    vm = _guest(admin, "tiny-vm", hosts[0], [{"NETWORK_ID": str(vnet.id)}])
    ct = _guest(admin, "tiny-container", hosts[1], [])
    host_a, host_b = two_hosts
    figures: dict[str, float] = {}
    try:
        wait_vms(admin, [vm.id, ct.id], lambda s: s == "ACTIVE/RUNNING", timeout=BOOT)
        vm_ip = admin.vms.get(vm.id).nics[0].ip
        assert vm_ip == f"{subnet}.10"
        ct_deploy = admin.vms.get(ct.id).deploy_id
        vm_deploy = admin.vms.get(vm.id).deploy_id
        veth = f"ec{ct.id}n0"

        # The container: eth0 hot-plugged, with its lease's address; it reaches the VM.
        figures["lxc attach"] = _timed(
            admin, lambda: admin.vms.attach_nic(ct.id, network_id=vnet.id)
        )
        (nic,) = admin.vms.get(ct.id).nics
        assert (nic.nic_id, nic.ip) == (0, f"{subnet}.11")
        addresses = attach(host_b, ct_deploy, ["ip", "addr", "show", "eth0"]).stdout
        assert f"{subnet}.11/24" in addresses and nic.mac in addresses
        assert (_link(host_b, veth) or {}).get("master") == f"ecbr{vnet.id}"
        wait_for("ping over the hot-plugged NIC", lambda: _pings(host_b, ct_deploy, vm_ip), 30)
        assert admin.vms.get(ct.id).lcm_state_name == "RUNNING"
        # Its LXC config has the NIC now: a restarted container comes back with it.
        reboot = admin.vms.action(ct.id, "reboot", hard=True).operation
        assert reboot is not None and wait_operation(admin, reboot.id, timeout=BOOT) == "done"
        wait_for("ping after a restart", lambda: _pings(host_b, ct_deploy, vm_ip), 30)

        # The VM: NIC 1 hot-plugged as a virtio-net device on a tap of the vnet's bridge.
        guest_dir = host_a.root / "guests" / vm_deploy
        assert _qemu_nics(guest_dir) == ["nic0"]
        figures["kvm attach"] = _timed(
            admin, lambda: admin.vms.attach_nic(vm.id, network=vnet.name)
        )
        assert [n.nic_id for n in admin.vms.get(vm.id).nics] == [0, 1]
        assert _qemu_nics(guest_dir) == ["nic0", "nic1"]
        tap = _link(host_a, f"ec{vm.id}n1")
        assert tap is not None and tap.get("master") == f"ecbr{vnet.id}"
        spec = json.loads((guest_dir / "spec.json").read_text())
        assert [n["nic_id"] for n in spec["nics"]] == [0, 1]
        assert all(isinstance(n.get("pci_slot"), int) for n in spec["nics"])

        # A suspended VM comes back from its memory image with the same NICs, same slots.
        for action, rests in (("suspend", "SUSPENDED"), ("resume", "ACTIVE/RUNNING")):
            admin.vms.action(vm.id, action)
            wait_vms(admin, [vm.id], lambda s, r=rests: s == r, timeout=BOOT)
        assert _qemu_nics(guest_dir) == ["nic0", "nic1"]
        wait_for("ping the VM after its restore", lambda: _pings(host_b, ct_deploy, vm_ip), 30)

        figures["kvm detach"] = _timed(admin, lambda: admin.vms.detach_nic(vm.id, 1))
        assert [n.nic_id for n in admin.vms.get(vm.id).nics] == [0]
        assert _qemu_nics(guest_dir) == ["nic0"]
        assert _link(host_a, f"ec{vm.id}n1") is None
        assert admin.vms.get(vm.id).lcm_state_name == "RUNNING"

        # The container's NIC out again: its veth is gone, the VM out of reach.
        figures["lxc detach"] = _timed(admin, lambda: admin.vms.detach_nic(ct.id, 0))
        assert admin.vms.get(ct.id).nics == []
        assert _link(host_b, veth) is None
        assert not _pings(host_b, ct_deploy, vm_ip)
        assert "eth0" not in attach(host_b, ct_deploy, ["ip", "-o", "link"]).stdout
        assert [x.ip for x in admin.vnets.leases(vnet.id)] == [vm_ip]  # the container's went back
        print("hotplug seconds (API call to operation done):", figures)
    finally:
        for obj in (vm, ct):
            admin.vms.action(obj.id, "terminate", hard=True)
        wait_vms(admin, [vm.id, ct.id], lambda s: s == "DONE", timeout=60)
    for net in two_hosts:
        assert network_leftovers(net) == [], net.name
    admin.vnets.delete(vnet.id)
    admin.secgroups.delete(group.id)
