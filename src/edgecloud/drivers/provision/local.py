"""The `local` provider: a simulated edge site on this machine, one network namespace a host.

For provision P (tag), host i named N::

    root namespace: bridge ecpb<hash(P)>  198.18.X.1/24 ── veth ecpv<hash(P,i)> ┐
    netns ecp-P-i:  eth0 198.18.X.(10+i)/24 <─────────────────────────────────┘
                    lo up, no default route; sshd on 198.18.X.(10+i):22

X is a /24 of 198.18.0.0/15 that nothing on this machine used when P's first host was made
(or the `network` setting). The state directory holds, for P::

    <state_dir>/P/provision.json        {"network": ..., "bridge": ...}
    <state_dir>/P/N/host.json           {"index", "netns", "veth", "address", "sshd_pid"}
    <state_dir>/P/N/root/               the host's tree (0755 down the path: unprivileged
                                        LXC containers need o+x on every parent)
    <state_dir>/P/N/ssh/                host key, authorized_keys, sshd_config, log, pid file
    <state_dir>/P/N/sysctl.conf         the host playbook's sysctl settings (not /etc's)
    <state_dir>/P/N/ansible-tmp/        Ansible's temp files on the host (not /root's)

Links carry the alias `edgecloud-provision:P`, and sshd's command line the path of its
config under <state_dir>/P/, so `resources` and `delete_all` find what belongs to P from the
machine itself even when the state directory is partial or gone.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgecloud.drivers import registry
from edgecloud.drivers.base import DriverError
from edgecloud.drivers.provision import sshd, system
from edgecloud.drivers.provision.api import ProvidedHost, ProviderResource, ProvisionHost
from edgecloud.drivers.provision.layout import (
    MAX_INDEX,
    NETWORK_LOCK,
    TAG,
    bridge_name,
    check_id,
    check_name,
    check_settings,
    digest,
    make_dir,
    netns_name,
    read_json,
    veth_name,
    write_json,
)
from edgecloud.drivers.provision.system import ip

__all__ = ["LocalProvider"]


class LocalProvider:
    """A `Provider` whose hosts are network namespaces of this machine with their own sshd.

    Needs root, iproute2 and openssh-server. Calls on one state directory are serialised
    by a lock file in it; every call is idempotent.
    """

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir).absolute()
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # sshd started here, to reap

    def __repr__(self) -> str:
        return f"LocalProvider({self.state_dir})"

    # --- the Provider protocol -----------------------------------------------------

    def create_hosts(
        self,
        provision_id: str,
        hosts: Sequence[ProvisionHost],
        settings: Mapping[str, Any],
        authorized_key: str,
    ) -> list[ProvidedHost]:
        """Make each host (or find it made); return them in the order given."""
        check_id(provision_id)
        wanted = [(int(h.index), check_name(h.name)) for h in hosts]
        for index, name in wanted:
            if not 0 <= index <= MAX_INDEX:
                raise DriverError(f"host {name}: index {index} is not within 0..{MAX_INDEX}")
        if len({i for i, _ in wanted}) != len(wanted) or len({n for _, n in wanted}) != len(wanted):
            raise DriverError("host indexes and names must be unique")
        key = authorized_key.strip()
        if not key or "\n" in key:
            raise DriverError("authorized_key must be one public key line")
        requested = check_settings(settings)
        with self._locked():
            network = self._ensure_bridge(provision_id, requested)
            return [
                self._ensure_host(provision_id, network, index, name, key) for index, name in wanted
            ]

    def delete_hosts(self, provision_id: str, names: Sequence[str]) -> None:
        """Stop and remove these hosts; the bridge and state go with the last one."""
        check_id(provision_id)
        for name in names:
            check_name(name)
        with self._locked():
            for name in names:
                self._delete_host(provision_id, name)
            self._drop_if_empty(provision_id)

    def resources(self, provision_id: str) -> list[ProviderResource]:
        """The namespaces, links, sshd processes and state directory of the provision."""
        check_id(provision_id)
        found = [
            ProviderResource("netns", ns, f"{len(system.netns_pids(ns))} processes")
            for ns in self._namespaces(provision_id)
        ]
        for kind, name, detail in self._links(provision_id):
            found.append(ProviderResource(kind, name, detail))
        listeners = {
            record.get("sshd_pid"): record.get("name")
            for record in map(read_json, (self.state_dir / provision_id).glob("*/host.json"))
        }
        for pid in self._sshd_pids(provision_id):
            # The rest are sshd's per-connection processes.
            role = f"listener of {listeners[pid]}" if pid in listeners else "sshd"
            found.append(ProviderResource("process", str(pid), f"{role}: {system.cmdline(pid)}"))
        directory = self.state_dir / provision_id
        if directory.exists():
            hosts = sorted(p.name for p in directory.iterdir() if p.is_dir())
            found.append(ProviderResource("state", str(directory), f"hosts: {', '.join(hosts)}"))
        return found

    def delete_all(self, provision_id: str) -> list[str]:
        """Remove everything of the provision found on the machine; return what it was."""
        check_id(provision_id)
        removed: list[str] = []
        with self._locked():
            pids = self._sshd_pids(provision_id)
            self._kill(pids)
            removed.extend(f"process {pid}" for pid in pids)
            for ns in self._namespaces(provision_id):
                removed.extend(f"process {pid}" for pid in self._delete_netns(ns, veth=None))
                removed.append(f"netns {ns}")
            for kind, name, _ in self._links(provision_id):
                if system.delete_link(name):
                    removed.append(f"{kind} {name}")
            directory = self.state_dir / provision_id
            if directory.exists():
                shutil.rmtree(directory)
                removed.append(f"state {directory}")
        return removed

    # --- creating ------------------------------------------------------------------

    def _ensure_bridge(
        self, provision_id: str, requested: ipaddress.IPv4Network | None
    ) -> ipaddress.IPv4Network:
        """Choose the provision's /24 (once) and make its bridge with the .1 address."""
        directory = make_dir(self.state_dir / provision_id)
        record_path = directory / "provision.json"
        bridge = bridge_name(provision_id)
        with system.locked(NETWORK_LOCK):
            record = read_json(record_path)
            exists = system.link_exists(bridge)
            if "network" in record:
                network = ipaddress.IPv4Network(record["network"])
                if requested is not None and requested != network:
                    raise DriverError(
                        f"provision {provision_id} already uses {network}, not {requested}"
                    )
                if not exists and not system.is_free(network):
                    raise DriverError(f"{network} of provision {provision_id} is used here now")
            else:
                if requested is not None:
                    if not system.is_free(requested):
                        raise DriverError(f"{requested} is already used on this machine")
                    network = requested
                else:
                    start = int(digest(provision_id)[:8], 16)
                    network = system.free_subnet(self._chosen_networks(), start)
                write_json(record_path, {"network": str(network), "bridge": bridge})
            if not exists:
                ip("link", "add", bridge, "type", "bridge")
            ip("link", "set", "dev", bridge, "alias", TAG + provision_id)
            ip("addr", "replace", f"{network[1]}/24", "dev", bridge)
            ip("link", "set", "dev", bridge, "up")
        return network

    def _chosen_networks(self) -> list[ipaddress.IPv4Network]:
        """The /24s recorded by this state directory's provisions (made or not yet)."""
        chosen: list[ipaddress.IPv4Network] = []
        if self.state_dir.is_dir():
            for record in self.state_dir.glob("*/provision.json"):
                network = read_json(record).get("network")
                if isinstance(network, str):
                    chosen.append(ipaddress.IPv4Network(network))
        return chosen

    def _ensure_host(
        self,
        provision_id: str,
        network: ipaddress.IPv4Network,
        index: int,
        name: str,
        authorized_key: str,
    ) -> ProvidedHost:
        directory = self.state_dir / provision_id
        for other in directory.glob("*/host.json"):
            found = read_json(other).get("index")
            if other.parent.name != name and found == index:
                raise DriverError(
                    f"index {index} of provision {provision_id} is {other.parent.name}"
                )
        host_dir = make_dir(directory / name)
        root = make_dir(host_dir / "root")
        ssh_dir = make_dir(host_dir / "ssh", 0o700)
        record_path = host_dir / "host.json"
        record = read_json(record_path)
        if record.get("index", index) != index:
            raise DriverError(
                f"host {name} of provision {provision_id} has index {record['index']}"
            )
        ns, veth = netns_name(provision_id, index), veth_name(provision_id, index)
        address = str(network[10 + index])
        record.update(index=index, name=name, netns=ns, veth=veth, address=address)
        write_json(record_path, record)  # before anything exists: delete_hosts finds it
        self._ensure_netns(provision_id, ns, veth, address)
        host_key = sshd.ensure_host_key(ssh_dir, f"{name}@{provision_id}")
        config = sshd.write_config(ssh_dir, address, authorized_key)
        recorded = record.get("sshd_pid")
        pid = recorded if isinstance(recorded, int) else 0
        if not sshd.is_ours(pid, config):
            proc = sshd.start(ns, config)
            pid = proc.pid
            self._children[pid] = proc
            record["sshd_pid"] = pid
            write_json(record_path, record)
        try:
            sshd.wait_port(address, pid, config)
        except DriverError:
            self._kill([pid])
            raise
        host_vars = self._playbook_vars(host_dir, ssh_dir)
        return ProvidedHost(name, address, sshd.SSH_PORT, host_key, str(root), ns, host_vars)

    @staticmethod
    def _playbook_vars(host_dir: Path, ssh_dir: Path) -> dict[str, str]:
        """The host playbook's variables: this machine's files are no namespace host's.

        sshd's config, authorized_keys and pid file are the host's own; sysctl settings
        persist in the host's directory, and Ansible's temp files on the "remote" side go
        there too (not to this machine's /root/.ansible). The namespace has no route out:
        packages missing here are installed without an apt cache update.
        """
        return {
            **sshd.playbook_vars(ssh_dir),
            "edgecloud_sysctl_file": str(host_dir / "sysctl.conf"),
            "edgecloud_apt_update": "false",
            "ansible_remote_tmp": str(host_dir / "ansible-tmp"),
        }

    def _ensure_netns(self, provision_id: str, ns: str, veth: str, address: str) -> None:
        if ns not in system.namespaces():
            ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "dev", "lo", "up")
        if not system.link_exists("eth0", ns):
            system.delete_link(veth)  # a root end left without its namespace
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        bridge = bridge_name(provision_id)
        ip("link", "set", "dev", veth, "alias", TAG + provision_id)
        ip("link", "set", "dev", veth, "master", bridge, "up")
        ip("-n", ns, "addr", "replace", f"{address}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "dev", "eth0", "up")

    # --- deleting ------------------------------------------------------------------

    def _delete_host(self, provision_id: str, name: str) -> None:
        host_dir = self.state_dir / provision_id / name
        record = read_json(host_dir / "host.json")
        config = host_dir / "ssh" / sshd.CONFIG
        pid = record.get("sshd_pid")
        pids = [pid] if isinstance(pid, int) and sshd.is_ours(pid, config) else []
        # One started with this config whose pid was not recorded (a crash in between).
        pids += [p for p in system.processes_with(sshd.SSHD, str(config)) if p not in pids]
        self._kill(pids)
        index = record.get("index")
        if isinstance(index, int):
            ns = netns_name(provision_id, index)
            self._delete_netns(ns, veth=veth_name(provision_id, index))
        if host_dir.exists():
            shutil.rmtree(host_dir)

    def _delete_netns(self, ns: str, veth: str | None) -> list[int]:
        """Kill what runs in `ns`, delete its veth pair and the namespace; return the pids."""
        killed = system.empty_netns(ns)
        self._reap(killed)
        # Deleting an end deletes its pair at once (the namespace's own cleanup is lazy).
        ip("-n", ns, "link", "del", "dev", "eth0", check=False)
        if veth is not None:
            system.delete_link(veth)
        ip("netns", "del", ns, check=False)
        return killed

    def _drop_if_empty(self, provision_id: str) -> None:
        """Remove the bridge and the state once the provision has no host left."""
        directory = self.state_dir / provision_id
        if directory.is_dir() and any(p.is_dir() for p in directory.iterdir()):
            return
        if self._namespaces(provision_id):
            return
        for _, name, _ in self._links(provision_id):
            system.delete_link(name)
        if directory.exists():
            shutil.rmtree(directory)

    def _kill(self, pids: Sequence[int]) -> None:
        system.kill_and_wait(pids)
        self._reap(pids)

    def _reap(self, pids: Sequence[int]) -> None:
        """Collect the exit status of the killed sshd this object started (no zombies)."""
        for pid in pids:
            proc = self._children.pop(pid, None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)

    def _reap_exited(self) -> None:
        """Collect the sshd this object started that have ended on their own."""
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]

    # --- finding what the machine has ---------------------------------------------

    def _namespaces(self, provision_id: str) -> list[str]:
        pattern = re.compile(rf"^ecp-{re.escape(provision_id)}-\d+$")
        return sorted(ns for ns in system.namespaces() if pattern.fullmatch(ns))

    def _links(self, provision_id: str) -> list[tuple[str, str, str]]:
        """(kind, name, detail) of the root namespace's links of the provision."""
        bridge = bridge_name(provision_id)
        found: list[tuple[str, str, str]] = []
        for link in system.links():
            name = link.get("ifname", "")
            if name != bridge and link.get("ifalias") != TAG + provision_id:
                continue
            if name == bridge:
                found.append(("bridge", name, f"{link.get('operstate', '?')}"))
            else:
                found.append(
                    ("veth", name, f"{link.get('operstate', '?')} on {link.get('master')}")
                )
        # The bridge first: deleting it before its ports is fine, the reverse as well.
        return sorted(found, key=lambda f: (f[0] != "bridge", f[1]))

    def _sshd_pids(self, provision_id: str) -> list[int]:
        """The sshd processes run with a config under the provision's state directory."""
        return system.processes_with(sshd.SSHD, f"{self.state_dir / provision_id}/")

    def _locked(self) -> Any:
        self._reap_exited()
        make_dir(self.state_dir)
        return system.locked(self.state_dir / ".lock")


registry.register("provision", "local", LocalProvider)
