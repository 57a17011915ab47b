"""kvm, lxc and microvm hosts: the node code (edgecloud.node) run over the host's transport.

Actions go to the host's node agent, one long-lived ``python3 ROOT/node.pyz serve`` per
host on its connection (see agent.py), so an action costs a JSON line rather than a new
channel and a Python start. When the agent cannot run, an action is one command of its
own, ``python3 ROOT/node.pyz ACTION`` with the JSON request on stdin and the answer on
stdout; the answers are the same either way. The node code is copied to the host on
first contact and again whenever this front-end's version of it differs from what the
host runs (the agent is then restarted); the host's SSH key is pinned on first contact.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgecloud.drivers.base import (
    DriverError,
    Files,
    GuestSpec,
    GuestStatus,
    HostFacts,
    HostRef,
    HostUnreachable,
    Streams,
    Transport,
)
from edgecloud.drivers.hypervisor.agent import NodeAgent
from edgecloud.drivers.hypervisor.disks import HostDisks, host_paths
from edgecloud.drivers.hypervisor.node_disks import NodeDisks
from edgecloud.drivers.hypervisor.spec import DEFAULT_BOOT_TIMEOUT, node_spec
from edgecloud.drivers.registry import register
from edgecloud.drivers.transport.keys import ensure_client_key
from edgecloud.drivers.transport.pool import TransportPool
from edgecloud.drivers.transport.ssh import fetch_host_key
from edgecloud.node.build import build_zipapp, node_version

log = logging.getLogger("edgecloud.drivers.node")

PYTHON = "python3"
# Installs the zipapp atomically: a fixed script; the paths are its arguments.
_INSTALL = 'set -e; mkdir -p "$1"; cat > "$2.tmp"; mv -f "$2.tmp" "$2"'
# Short actions; deploy, shutdown, save and restore get their own, longer budgets.
ACTION_TIMEOUT = 60.0
STOP_TIMEOUT = 20
# After an agent failed to start on a host, actions there run one command each this long.
AGENT_RETRY_AFTER = 60.0


class NodeMissing(DriverError):
    """The host has no node code (or an unreadable one) yet."""


class NodeHypervisor(NodeDisks):
    """One driver for every kind the node code runs; kvm, lxc and microvm hosts share it."""

    def __init__(
        self, *, client_key: Path, pool: TransportPool | None = None, agents: bool = True
    ) -> None:
        """Use the front-end's SSH key; transports are kept one per host. With `agents`
        False every action is a command of its own (the benchmarks compare the two)."""
        self.pool = pool or TransportPool(client_key)
        self.use_agents = agents
        self._synced: dict[tuple[int, str], str] = {}
        self._lock = threading.Lock()
        self._zip: bytes | None = None
        self.disks = HostDisks(
            lambda host, action, request, timeout: self._call(
                host, action, request, timeout=timeout
            ),
            self._files,
        )
        self._agents: dict[tuple[int, str], NodeAgent] = {}
        self._agent_locks: dict[tuple[int, str], threading.Lock] = {}
        self._no_agent_until: dict[tuple[int, str], float] = {}

    def close(self) -> None:
        """End every agent and drop every connection; later actions open new ones."""
        with self._lock:
            agents = list(self._agents.values())
            self._agents.clear()
        for agent in agents:
            agent.close()
        self.pool.close_all()

    # -- plumbing ---------------------------------------------------------------------

    def _transport(self, host: HostRef, host_key: str | None = None) -> Transport:
        return self.pool.get(
            host_id=host.id,
            address=host.address or host.name,
            port=host.port,
            kind=host.transport,
            host_key=host_key if host_key is not None else host.host_key,
        )

    def _files(self, host: HostRef) -> Files:
        transport = self._transport(host)
        if not isinstance(transport, Files):
            raise DriverError(f"the {host.transport} transport of {host.name} cannot copy files")
        return transport

    def _agent(self, host: HostRef) -> NodeAgent | None:
        """Return the host's running agent, starting one when needed; None when actions
        must run one command each (agents off, transport without streams, or an agent
        failed to start there less than AGENT_RETRY_AFTER seconds ago)."""
        if not self.use_agents:
            return None
        transport = self._transport(host)
        if not isinstance(transport, Streams):
            return None
        key = (host.id, host.root)
        with self._lock:
            starting = self._agent_locks.setdefault(key, threading.Lock())
        with starting:
            agent = self._agents.get(key)
            if agent is not None and agent.alive and agent.transport is transport:
                return agent
            if agent is not None:
                agent.close()
                del self._agents[key]
            if time.monotonic() < self._no_agent_until.get(key, 0.0):
                return None
            argv = [PYTHON, f"{host.root}/node.pyz", "serve"]
            try:
                agent = NodeAgent(transport, argv, host.name)
            except HostUnreachable:
                raise
            except DriverError as exc:
                if _no_node_code(str(exc)):
                    raise NodeMissing(f"host {host.name} has no node code at {host.root}") from exc
                log.warning("no node agent on %s, one command per action: %s", host.name, exc)
                self._no_agent_until[key] = time.monotonic() + AGENT_RETRY_AFTER
                return None
            self._agents[key] = agent
            return agent

    def _drop_agent(self, host: HostRef) -> None:
        with self._lock:
            agent = self._agents.pop((host.id, host.root), None)
        if agent is not None:
            agent.close()

    def _run(
        self, host: HostRef, action: str, request: dict[str, Any], *, timeout: float
    ) -> dict[str, Any]:
        body = {"root": host.root, **request}
        agent = self._agent(host)
        if agent is not None:
            answer: Any = agent.call(action, body, timeout=timeout)
        else:
            answer = self._run_once(host, action, body, timeout=timeout)
        if not isinstance(answer, dict) or not answer.get("ok"):
            error = answer.get("error", "unknown error") if isinstance(answer, dict) else answer
            raise DriverError(f"{action} on {host.name}: {error}")
        found = answer.get("result", {})
        return found if isinstance(found, dict) else {}

    def _run_once(self, host: HostRef, action: str, body: dict[str, Any], *, timeout: float) -> Any:
        """Run one action as a command of its own; return the answer it printed."""
        argv = [PYTHON, f"{host.root}/node.pyz", action]
        result = self._transport(host).run(argv, timeout=timeout, stdin=json.dumps(body).encode())
        try:
            return json.loads(result.stdout)
        except ValueError:
            detail = (result.stderr or result.stdout).strip()[-500:]
            if _no_node_code(detail):
                raise NodeMissing(f"host {host.name} has no node code at {host.root}") from None
            raise DriverError(
                f"node action {action} on {host.name} gave no answer "
                f"(exit {result.exit_status}): {detail}"
            ) from None

    def _call(
        self, host: HostRef, action: str, request: dict[str, Any], *, timeout: float
    ) -> dict[str, Any]:
        """Run an action; install the node code first when the host lacks it."""
        key = (host.id, host.root)
        if self._synced.get(key) != node_version():
            self.sync(host)
        try:
            return self._run(host, action, request, timeout=timeout)
        except NodeMissing:
            self._synced.pop(key, None)
            self.sync(host, force=True)
            return self._run(host, action, request, timeout=timeout)

    def _zipapp(self) -> bytes:
        with self._lock:
            if self._zip is None:
                with tempfile.TemporaryDirectory(prefix="ec-node-") as tmp:
                    path = Path(tmp) / "node.pyz"
                    build_zipapp(path)
                    self._zip = path.read_bytes()
            return self._zip

    # -- NodeSync ---------------------------------------------------------------------

    def sync(self, host: HostRef, *, force: bool = False) -> str:
        """Copy the node code to the host unless it already runs this version."""
        want = node_version()
        if not force:
            try:
                have = str(self._run(host, "version", {}, timeout=ACTION_TIMEOUT)["version"])
            except NodeMissing:
                have = ""
            except DriverError as exc:
                log.info("node code on %s unusable, reinstalling: %s", host.name, exc)
                have = ""
            if have == want:
                self._synced[(host.id, host.root)] = want
                return want
        target = f"{host.root}/node.pyz"
        self._drop_agent(host)  # it runs the old code; the next action starts a new one
        result = self._transport(host).run(
            ["sh", "-c", _INSTALL, "sh", host.root, target],
            timeout=ACTION_TIMEOUT,
            stdin=self._zipapp(),
        )
        if result.exit_status != 0:
            raise DriverError(f"copying node code to {host.name}: {result.stderr.strip()}")
        have = str(self._run(host, "version", {}, timeout=ACTION_TIMEOUT)["version"])
        if have != want:
            raise DriverError(f"{host.name} runs node code {have} after copying {want}")
        log.info("node code %s installed on %s", want[:12], host.name)
        self._synced[(host.id, host.root)] = want
        return want

    # -- Hypervisor -------------------------------------------------------------------

    def probe(self, host: HostRef) -> HostFacts:
        """Pin the host key on first contact, install the node code, report capacity."""
        pinned: str | None = None
        if host.transport == "ssh" and not host.host_key:
            pinned = fetch_host_key(host.address or host.name, port=host.port)
            self._transport(host, host_key=pinned)
            host = _with_key(host, pinned)
        facts = self._call(host, "probe", {}, timeout=ACTION_TIMEOUT)
        return HostFacts(
            total_cpu=float(facts.get("cpu", 0)),
            total_memory_mb=int(facts.get("memory_mb", 0)),
            used_cpu=float(facts.get("used_cpu", 0.0)),
            used_memory_mb=int(facts.get("used_memory_mb", 0)),
            free_disk_mb=int(facts.get("free_disk_mb", 0)),
            hypervisors=tuple(str(h) for h in facts.get("hypervisors", ())),
            attributes={
                "HOSTNAME": str(facts.get("hostname", "")),
                "KVM": "YES" if facts.get("kvm") else "NO",
                "LXC_UNPRIVILEGED": "YES" if facts.get("unprivileged_lxc") else "NO",
                "QEMU_VERSION": str(facts.get("qemu_version", "")),
                "LXC_VERSION": str(facts.get("lxc_version", "")),
                "TOTAL_DISK": str(facts.get("total_disk_mb", 0)),
            },
            host_key=pinned,
            node_version=str(facts.get("version", "")),
        )

    def deploy(self, host: HostRef, spec: GuestSpec) -> str:
        """Start the guest; return once it has really started (see the node's deploy)."""
        kind = spec.kind or "kvm"
        body = node_spec(host_paths(spec, host.root), kind)
        timeout = float(body.get("boot_timeout", DEFAULT_BOOT_TIMEOUT)) + 30
        found = self._call(host, "deploy", {"kind": kind, "spec": body}, timeout=timeout)
        return str(found.get("deploy_id", body["deploy_id"]))

    def shutdown(self, host: HostRef, deploy_id: str, *, hard: bool) -> None:
        """ACPI power-off (or the container's halt signal), hard stop after a timeout."""
        request = {"deploy_id": deploy_id, "hard": hard, "timeout": STOP_TIMEOUT}
        self._call(host, "shutdown", request, timeout=STOP_TIMEOUT + 30)

    def reboot(self, host: HostRef, deploy_id: str, *, hard: bool) -> None:
        """Reboot (reset when hard)."""
        self._call(host, "reboot", {"deploy_id": deploy_id, "hard": hard}, timeout=ACTION_TIMEOUT)

    def save(self, host: HostRef, deploy_id: str) -> None:
        """Save the guest's memory on the host and stop it."""
        self._call(host, "save", {"deploy_id": deploy_id}, timeout=300)

    def restore(self, host: HostRef, deploy_id: str) -> None:
        """Start the guest from its saved memory."""
        self._call(host, "restore", {"deploy_id": deploy_id}, timeout=300)

    def cleanup(self, host: HostRef, deploy_id: str, *, keep_disks: bool = False) -> None:
        """Remove what is left of the guest on the host (but its disks, with keep_disks)."""
        request = {"deploy_id": deploy_id, "keep_disks": keep_disks}
        self._call(host, "cleanup", request, timeout=ACTION_TIMEOUT)

    def poll(self, host: HostRef, deploy_id: str) -> GuestStatus:
        """Report one guest."""
        return _status(self._call(host, "poll", {"deploy_id": deploy_id}, timeout=ACTION_TIMEOUT))

    def poll_all(self, host: HostRef) -> list[GuestStatus]:
        """Report every guest under the host's root."""
        found = self._call(host, "poll_all", {}, timeout=ACTION_TIMEOUT)
        return [_status(g) for g in found.get("guests", ())]

    # -- NetworkFilters ---------------------------------------------------------------

    def update_sg(self, host: HostRef, deploy_id: str, network: Mapping[str, Any]) -> None:
        """Rewrite the nftables chains of the guest's NICs."""
        request = {"deploy_id": deploy_id, "nics": list(network.get("nics", ()))}
        self._call(host, "net_update_sg", request, timeout=ACTION_TIMEOUT)

    # -- NicHotplug -------------------------------------------------------------------

    def attach_nic(
        self, host: HostRef, deploy_id: str, network: Mapping[str, Any], nic_id: int
    ) -> None:
        """Plug one of the VM's NICs into the running guest (kvm, lxc; not microvm)."""
        found = [n for n in network.get("nics", ()) if int(n.get("nic_id", -1)) == nic_id]
        if not found:
            raise DriverError(f"VM {deploy_id} has no NIC {nic_id} to attach")
        request = {
            "deploy_id": deploy_id,
            "nic": found[0],
            "network": dict(network.get("host", {})),
        }
        self._call(host, "nic_attach", request, timeout=ACTION_TIMEOUT)

    def detach_nic(self, host: HostRef, deploy_id: str, nic_id: int) -> None:
        """Unplug a NIC from the running guest."""
        request = {"deploy_id": deploy_id, "nic_id": nic_id}
        self._call(host, "nic_detach", request, timeout=ACTION_TIMEOUT)

    # -- ConsoleLog -------------------------------------------------------------------

    def console_log(self, host: HostRef, deploy_id: str, *, tail_bytes: int) -> str:
        """Return the tail of the guest's console."""
        found = self._call(
            host,
            "console_log",
            {"deploy_id": deploy_id, "tail_bytes": tail_bytes},
            timeout=ACTION_TIMEOUT,
        )
        return str(found.get("text", ""))


def _no_node_code(detail: str) -> bool:
    """Tell whether Python's complaint says node.pyz is not there (or not readable)."""
    return "node.pyz" in detail and ("No such file" in detail or "can't" in detail)


def _with_key(host: HostRef, key: str) -> HostRef:
    return replace(host, host_key=key)


def _status(raw: dict[str, Any]) -> GuestStatus:
    deploy_id = str(raw.get("deploy_id", ""))
    vm_id = raw.get("vm_id")
    if vm_id is None and deploy_id.startswith("one-"):
        vm_id = deploy_id[4:]
    runtime = {k: raw[k] for k in ("kind", "accel", "privileged") if raw.get(k) is not None}
    figures = raw.get("figures") or {}
    return GuestStatus(
        deploy_id=deploy_id,
        vm_id=int(vm_id or -1),
        state=str(raw.get("state", "missing")),
        figures={k: float(v) for k, v in figures.items() if isinstance(v, int | float)},
        runtime=runtime,
    )


_SHARED: dict[tuple[str, bool], NodeHypervisor] = {}
_SHARED_LOCK = threading.Lock()


def shared(*, key_dir: Path | str, agents: bool = True) -> NodeHypervisor:
    """Return the one driver for the key pair in `key_dir` (made on first use); kvm, lxc
    and microvm hosts share its connections and agents."""
    key = str(ensure_client_key(Path(key_dir)))
    with _SHARED_LOCK:
        driver = _SHARED.get((key, agents))
        if driver is None:
            driver = NodeHypervisor(client_key=Path(key), agents=agents)
            _SHARED[(key, agents)] = driver
        return driver


for _kind in ("kvm", "lxc", "microvm"):
    register("hypervisor", _kind, shared)
