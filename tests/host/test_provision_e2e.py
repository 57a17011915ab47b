"""A whole edge cluster from the shipped example, on the `local` provider, end to end.

Three namespace hosts are created with their own sshd, configured by the Ansible playbook
over SSH, registered as a cluster (datastores, an `evpn` private network, a bridged public
one) and monitored; a VM and a container deploy there on different hosts and ping each
other over the private network; `delete` then leaves no namespace, process, file, link or
record behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from edgecloud.api.provision import Provision
from edgecloud.client import Client
from edgecloud.drivers.provision.layout import TAG, bridge_name
from tests.support.frontend import RunningFrontEnd
from tests.support.guests import wait_for
from tests.support.waiting import wait_vms

BOOT = 150.0
VM_PINGS = (
    "(i=0; while [ $i -lt 300 ]; do ping -c 1 -W 1 {peer} >/dev/null 2>&1 && "
    "echo VM-PINGED-PEER > /dev/console && break; i=$((i+1)); sleep 1; done) &"
)


def _template_id(admin: Client, name: str) -> int:
    (found,) = [t for t in admin.templates.list() if t.name == name]
    return found.id


def _guest(admin: Client, template: str, host_id: int, vnet_id: int, start: str = "") -> Any:
    context: dict[str, str] = {"NETWORK": "YES"}
    if start:
        context["START_SCRIPT"] = start
    return admin.vms.create(
        template_id=_template_id(admin, template),
        template={
            "SCHED_REQUIREMENTS": f"ID={host_id}",
            "NIC": [{"NETWORK_ID": str(vnet_id)}],
            "CONTEXT": context,
        },
    )


def _attach(netns: str, root: Path, deploy_id: str, argv: list[str]) -> bool:
    done = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            netns,
            "lxc-attach",
            "-n",
            deploy_id,
            "-P",
            str(root / "lxc"),
            "--",
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0


def leftovers(state_dir: Path, tag: str) -> list[str]:
    """What the machine still has of the provision: namespaces, links, processes, files."""
    found: list[str] = []
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    found += [
        f"netns {line.split()[0]}"
        for line in out.stdout.splitlines()
        if line.startswith(f"ecp-{tag}-")
    ]
    links = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True)
    for link in json.loads(links.stdout):
        if link["ifname"] == bridge_name(tag) or link.get("ifalias") == TAG + tag:
            found.append(f"link {link['ifname']}")
    needle = f"/{tag}/".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(f"process {entry.name}")
            except OSError:
                continue
    if (state_dir / tag).exists():
        found.append(f"files {state_dir / tag}")
    return found


def records(admin: Client, tag: str) -> list[str]:
    """The front-end's objects named after the provision."""
    found = [f"cluster {c.name}" for c in admin.clusters.list() if c.name.startswith(tag)]
    found += [f"host {h.name}" for h in admin.hosts.list() if h.name.startswith(tag)]
    found += [f"datastore {d.name}" for d in admin.datastores.list() if d.name.startswith(tag)]
    found += [f"vnet {v.name}" for v in admin.vnets.list() if v.name.startswith(tag)]
    return found


def test_local_edge_cluster_end_to_end(admin: Client, frontend: RunningFrontEnd) -> None:
    state_dir = frontend.settings.home / "provision" / "local"
    started = time.monotonic()
    made = admin.provisions.create(example="local-edge", inputs={"site": "e2e"})
    provision: Provision | None = None
    try:
        provision = admin.provisions.wait(made.id, timeout=300)
        took = time.monotonic() - started
        log = "\n".join(f"== {s.name}\n{s.log}" for s in admin.provisions.log(made.id))
        assert provision.state_name == "RUNNING", f"{provision.last_error}\n{log}"
        print(f"\nlocal provision of 3 hosts: create -> RUNNING in {took:.1f} s")
        assert "ok=" in log and "failed=0" in log  # Ansible's recap, verbatim
        hosts = provision.hosts
        assert len(hosts) == 3 and all(h.host_id is not None for h in hosts)
        cluster = admin.clusters.get(provision.cluster_id or -1)
        (private,) = [
            v for v in (admin.vnets.get(i) for i in cluster.vnet_ids) if v.driver == "evpn"
        ]
        peer = "10.0.0.11"  # the second lease of 10.0.0.10 + 100: the container's
        vm = _guest(
            admin, "tiny-vm", hosts[1].host_id or -1, private.id, VM_PINGS.format(peer=peer)
        )
        ct = _guest(admin, "tiny-container", hosts[2].host_id or -1, private.id)
        wait_vms(admin, [vm.id, ct.id], lambda s: s == "ACTIVE/RUNNING", timeout=BOOT)
        vm_ip = admin.vms.get(vm.id).nics[0].ip
        assert admin.vms.get(ct.id).nics[0].ip == peer
        ct_host = admin.hosts.get(hosts[2].host_id or -1)
        netns = f"ecp-{provision.tag}-2"
        deploy_id = admin.vms.get(ct.id).deploy_id
        wait_for(
            "the container pings the VM over evpn",
            lambda: _attach(
                netns, Path(ct_host.root), deploy_id, ["ping", "-c", "1", "-W", "1", vm_ip]
            ),
            90,
        )
        wait_for(
            "the VM pings the container over evpn",
            lambda: "VM-PINGED-PEER" in admin.vms.console_log(vm.id),
            90,
        )
        for guest in (vm, ct):
            admin.vms.action(guest.id, "terminate", hard=True)
        wait_vms(admin, [vm.id, ct.id], lambda s: s == "DONE", timeout=60)

        admin.provisions.delete(made.id)
        gone = admin.provisions.wait(made.id, timeout=120)
        assert gone.state_name == "DONE", gone.last_error
        assert leftovers(state_dir, provision.tag) == []
        assert records(admin, provision.tag) == []
    finally:
        current = admin.provisions.get(made.id)
        if current.state_name != "DONE":  # a failure above: remove everything regardless
            if current.state_name not in ("RUNNING", "ERROR"):
                admin.provisions.wait(made.id, timeout=300)
            admin.provisions.delete(made.id, force=True)
            admin.provisions.wait(made.id, timeout=300)
        assert leftovers(state_dir, made.tag) == []
