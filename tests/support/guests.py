"""Helpers of the tests that run real guests through the REST API on namespace hosts."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecloud.api.infra import Host
from edgecloud.client import Client
from tests.support.nethosts import NetHost

BOOT = 120.0  # seconds a TCG boot may take on a loaded 2-core machine


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll `check` until it returns something true; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def add_host(admin: Client, host: NetHost, cluster_id: int = 0) -> Host:
    """Register a namespace host over SSH and wait for its first probe."""
    created = admin.hosts.create(
        name=host.netns,
        address=host.address,
        root=str(host.root),
        hypervisor="kvm",
        cluster_id=cluster_id,
    )
    return wait_for(  # type: ignore[no-any-return]
        f"host {host.netns} MONITORED",
        lambda: (h := admin.hosts.get(created.id)).state_name == "MONITORED" and h,
    )


def guest_processes(host: NetHost) -> list[str]:
    """Return the command lines of QEMU processes whose files are under the host's root."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "qemu-system" in cmdline and str(host.root) in cmdline:
            found.append(f"{pid} {cmdline}")
    return found


def leftovers(host: NetHost, deploy_id: str) -> list[str]:
    """Return what is left of a guest on its host: processes, files, containers."""
    left = [p for p in guest_processes(host) if deploy_id in p]
    left += [str(p) for p in (host.root / "guests" / deploy_id, host.root / "lxc" / deploy_id)]
    return [x for x in left if not x.startswith("/") or Path(x).exists()]


def create_on(admin: Client, template: str, host: Host) -> Any:
    """Create a VM from a template (by name), placed on `host`."""
    (found,) = [t for t in admin.templates.list() if t.name == template]
    return admin.vms.create(template_id=found.id, template={"SCHED_REQUIREMENTS": f"ID={host.id}"})


def attach(net: NetHost, deploy_id: str, argv: list[str]) -> Any:
    """Run a command inside a container, in its host's namespace."""
    return net.exec(
        ["lxc-attach", "-n", deploy_id, "-P", str(net.root / "lxc"), "--", *argv], check=False
    )


def network_leftovers(net: NetHost) -> list[str]:
    """Return the network devices, nft tables and FRR files of ours left on a host."""
    links = json.loads(net.exec(["ip", "-j", "link"], check=True).stdout)
    left = [
        link["ifname"]
        for link in links
        if link["ifname"].startswith(("ecbr", "vxlan", "ec")) and link["ifname"] != "eth0"
    ]
    ruleset = json.loads(net.exec(["nft", "-j", "list", "ruleset"], check=True).stdout)
    left += [
        f"nft {item['table']['family']} {item['table']['name']}"
        for item in ruleset["nftables"]
        if "table" in item and item["table"]["name"] == "edgecloud"
    ]
    frr = net.root / "frr"
    if frr.exists():
        left += [str(p) for p in frr.iterdir()]
    return left


def guest_octet(hosts: list[NetHost], wanted: int) -> int:
    """Return the third octet of a 198.18.X.0/24 for guests: `wanted`, unless the hosts'
    own underlay is that /24 (NetHosts picks its /24 in 198.18.0.0/15 too)."""
    taken = {int(h.address.split(".")[2]) for h in hosts if h.address.startswith("198.18.")}
    octet = wanted
    while octet in taken:
        octet = (octet + 1) % 256
    return octet
