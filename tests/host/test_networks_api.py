"""Virtual networks through the REST API: a VM on host A and a container on host B.

Over a `vxlan` vnet and over an `evpn` vnet (FRR on both hosts, no multicast, learning
off): the container pings the VM only once the VM's security group lets ICMP in, a rule
added while both run; each guest's address, hostname and start script follow its context;
and after both are terminated nothing of the network is left on either host.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from edgecloud.api.infra import Host
from edgecloud.client import Client
from tests.support.guests import attach, guest_octet, network_leftovers, wait_for
from tests.support.nethosts import NetHost
from tests.support.waiting import wait_vms

BOOT = 120.0
START = "echo CTX-START host=$(hostname)"
# The VM's side of "ping each other": its start script keeps pinging the container (in the
# background, so the boot goes on) and says on the console when it got an answer.
VM_PINGS = (
    "(i=0; while [ $i -lt 300 ]; do ping -c 1 -W 1 {peer} >/dev/null 2>&1 && "
    "echo VM-PINGED-PEER > /dev/console && break; i=$((i+1)); sleep 1; done) &"
)


def _template_id(admin: Client, name: str) -> int:
    (found,) = [t for t in admin.templates.list() if t.name == name]
    return found.id


def _guest(
    admin: Client, template: str, host: Host, vnet_id: int, name: str, extra: str = ""
) -> Any:
    start = START + ("\n" + extra if extra else "")
    context = {"NETWORK": "YES", "SET_HOSTNAME": "$NAME", "START_SCRIPT": start}
    return admin.vms.create(
        name=name,
        template_id=_template_id(admin, template),
        template={
            "SCHED_REQUIREMENTS": f"ID={host.id}",
            "NIC": [{"NETWORK_ID": str(vnet_id)}],
            "CONTEXT": context,
        },
    )


def _pings(net: NetHost, deploy_id: str, address: str) -> bool:
    done = attach(net, deploy_id, ["ping", "-c", "1", "-W", "1", address])
    return bool(done.returncode == 0)


@pytest.mark.parametrize("driver", ["vxlan", "evpn"])
def test_vm_and_container_on_two_hosts_talk_through_a_vnet(
    admin: Client, hosts: list[Host], two_hosts: list[NetHost], driver: str
) -> None:
    octet = guest_octet(two_hosts, 210 if driver == "vxlan" else 220)  # not the hosts' /24
    guarded = admin.secgroups.create(
        name=f"ssh-only-{driver}", rules=[{"protocol": "TCP", "range": "22"}]
    )
    vnet = admin.vnets.create(
        name=f"private-{driver}",
        driver=driver,  # type: ignore[arg-type]
        security_groups=[guarded.id],
        address_ranges=[{"type": "IP4", "ip": f"198.18.{octet}.10", "size": 20}],
        template={"NETWORK_ADDRESS": f"198.18.{octet}.0", "NETWORK_MASK": "255.255.255.0"},
    )
    peer = f"198.18.{octet}.11"  # the container's address: the second lease
    vm = _guest(admin, "tiny-vm", hosts[0], vnet.id, f"vm-{driver}", VM_PINGS.format(peer=peer))
    ct = _guest(admin, "tiny-container", hosts[1], vnet.id, f"ct-{driver}")
    try:
        wait_vms(admin, [vm.id, ct.id], lambda s: s == "ACTIVE/RUNNING", timeout=BOOT)
        vm_ip = admin.vms.get(vm.id).nics[0].ip
        ct_ip = admin.vms.get(ct.id).nics[0].ip
        assert vm_ip == f"198.18.{octet}.10" and ct_ip == f"198.18.{octet}.11"
        ct_deploy = admin.vms.get(ct.id).deploy_id
        # Context: the VM printed its start script's output with the hostname it was given;
        # the container has its address, hostname and start script output too.
        console = admin.vms.console_log(vm.id)
        assert f"CTX-START host=vm-{driver}" in console
        assert attach(two_hosts[1], ct_deploy, ["hostname"]).stdout.strip() == f"ct-{driver}"
        addresses = attach(two_hosts[1], ct_deploy, ["ip", "-4", "addr", "show", "eth0"])
        assert f"{ct_ip}/24" in addresses.stdout
        log = attach(two_hosts[1], ct_deploy, ["cat", "/run/start_script.log"]).stdout
        assert f"CTX-START host=ct-{driver}" in log
        if driver == "evpn":
            _evpn_routes_on_both(admin, hosts, two_hosts)
        # The VM's group lets only SSH in: no ping. An ICMP rule lets it through, live.
        time.sleep(1)
        assert not _pings(two_hosts[1], ct_deploy, vm_ip)
        assert "VM-PINGED-PEER" not in admin.vms.console_log(vm.id)
        admin.secgroups.update(
            guarded.id, rules=[{"protocol": "TCP", "range": "22"}, {"protocol": "ICMP"}]
        )
        wait_for("ping allowed", lambda: _pings(two_hosts[1], ct_deploy, vm_ip), 30)
        # ... both ways: the container's group is the same, so the VM's pings get in now.
        wait_for(
            "the VM's ping answered",
            lambda: "VM-PINGED-PEER" in admin.vms.console_log(vm.id),
            30,
        )
        assert admin.vms.get(vm.id).lcm_state_name == "RUNNING"  # not restarted
    finally:
        for obj in (vm, ct):
            admin.vms.action(obj.id, "terminate", hard=True)
        wait_vms(admin, [vm.id, ct.id], lambda s: s == "DONE", timeout=60)
    for net in two_hosts:
        assert network_leftovers(net) == [], net.name
    admin.vnets.delete(vnet.id)
    admin.secgroups.delete(guarded.id)


def _evpn_routes_on_both(admin: Client, hosts: list[Host], two_hosts: list[NetHost]) -> None:
    """Both hosts' FRR has the EVPN routes of both guests' MACs."""
    macs = {n.mac for vm in admin.vms.list() if vm.state_name == "ACTIVE" for n in vm.nics}
    for host, net in zip(hosts, two_hosts, strict=True):
        name = _frr_name(net)

        def routes(net: NetHost = net, name: str = name) -> bool:
            out = net.exec(
                ["vtysh", "-N", name, "-c", "show bgp l2vpn evpn route"], check=False
            ).stdout.lower()
            return all(mac.lower() in out for mac in macs)

        wait_for(f"EVPN routes on {host.name}", routes, 30)


def _frr_name(net: NetHost) -> str:
    found = [p.name for p in (net.root / "frr").iterdir() if p.is_dir()]
    assert len(found) == 1, found
    return found[0]
