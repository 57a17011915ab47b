"""The monitor: probes hosts, reconciles what they run with the store, applies failure policy.

Each round asks every monitored host for its facts and its guests (through its
hypervisor driver), then writes what it learned in one unit of work:
- a host that answers is MONITORED, with fresh capacity and a monitoring sample;
- a host that misses `error_after` probes in a row goes ERROR and its running VMs UNKNOWN;
- a running VM whose guest is gone goes POWEROFF (as OpenNebula does), an UNKNOWN VM
  whose guest answers again goes back to RUNNING;
- in a cluster with "recreate on host failure", the VMs of a host that stayed in ERROR
  for the grace period are fenced off it and queued to be placed elsewhere; when the
  host comes back, their old guests are removed there, never resumed.
VMs with an operation in progress are left alone: the lifecycle owns them until it ends.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from edgecloud.drivers.base import (
    DriverError,
    GuestStatus,
    HostFacts,
    HostKeyMismatch,
    HostUnreachable,
)
from edgecloud.server.db.engine import Store
from edgecloud.server.db.models import Cluster, Host, HostSample, Operation, Vm, VmSample, now
from edgecloud.server.events import EventBus
from edgecloud.server.lifecycle import machine
from edgecloud.server.lifecycle.drivers import Drivers, host_ref
from edgecloud.server.lifecycle.engine import vm_change
from edgecloud.server.services.vm_lifecycle import history, requeue

log = logging.getLogger("edgecloud.monitor")
PROBE_THREADS = 16
INIT, MONITORED, ERROR, DISABLED, OFFLINE = 0, 2, 3, 4, 8


@dataclass
class Probe:
    """What one host answered (or that it did not)."""

    host_id: int
    facts: HostFacts | None = None
    guests: list[GuestStatus] = field(default_factory=list)
    error: str = ""
    # The host answered with another SSH key than the pinned one: ERROR at once.
    refused: bool = False


class Monitor:
    """Runs monitoring rounds in a background thread."""

    def __init__(
        self,
        store: Store,
        drivers: Drivers,
        events: EventBus,
        *,
        interval: float = 10.0,
        error_after: int = 3,
        retention_seconds: int = 86_400,
    ) -> None:
        """Prepare the monitor; nothing runs before start()."""
        self.store = store
        self.drivers = drivers
        self.events = events
        self.interval = interval
        self.error_after = error_after
        self.retention = retention_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._probed_at = 0

    def start(self) -> None:
        """Start monitoring rounds."""
        self._thread = threading.Thread(target=self._loop, name="ec-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current round."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        # The first round at once: a host added while the front-end was down, or just now,
        # is probed (its key pinned, its node code installed) without waiting a period.
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("monitoring round failed")
            self._wake.wait(self.interval)
            self._wake.clear()

    def wake(self) -> None:
        """Start the next round now (a host was added)."""
        self._wake.set()

    def run_once(self) -> None:
        """Probe every host once and write what was found."""
        with self.store.read() as session:
            hosts = session.scalars(select(Host).where(Host.state != OFFLINE)).all()
            targets = [
                (h.id, h.hypervisor, host_ref(h))
                for h in hosts
                if self.drivers.available(h.hypervisor)
            ]
        # What a probe says is only as new as the probe: a VM the lifecycle changed since then
        # (same second included) is left for the next round.
        self._probed_at = now()
        probes = self._probe_all(targets)
        changes: list[dict[str, Any]] = []
        with self.store.write() as session:
            busy = set(
                session.scalars(
                    select(Operation.object_id).where(
                        Operation.object_type == "VM", Operation.state.in_(("pending", "running"))
                    )
                )
            )
            # Every writer locks VMs before hosts. One round touches many hosts in one
            # transaction: lock all their VMs first (by id), then each host in id order, so a
            # request holding a VM and waiting for a host never meets a round holding that
            # host and waiting for the VM (a deadlock on PostgreSQL).
            probed = sorted(probes, key=lambda p: p.host_id)
            ids = [p.host_id for p in probed]
            placed = Vm.host_id.in_(ids) if len(ids) <= 5000 else Vm.host_id.is_not(None)
            session.execute(
                select(Vm.id).where(placed, Vm.state != 6).order_by(Vm.id).with_for_update()
            ).all()
            states_before: dict[int, int] = {}
            for probe in probed:
                changes += self._apply(session, probe, busy, states_before)
            changes += self._failure_policy(session, busy)
            self._expire_samples(session)
            host_changes = []
            for host_id, state in states_before.items():
                host = session.get(Host, host_id)  # in the session already: no query
                if host is not None and host.state != state:
                    host_changes.append(host_change(host))
        for change in changes:
            self.events.publish("vm", **change)
        for change in host_changes:
            self.events.publish("host", **change)

    def _probe_all(self, targets: list[tuple[int, str, Any]]) -> list[Probe]:
        """Probe hosts side by side: one slow or dead host must not hold up the others."""
        if len(targets) <= 1 or not self._parallel(targets):
            return [self._probe(host_id, kind, ref) for host_id, kind, ref in targets]
        with ThreadPoolExecutor(max_workers=min(PROBE_THREADS, len(targets))) as pool:
            return list(pool.map(lambda t: self._probe(*t), targets))

    def _parallel(self, targets: list[tuple[int, str, Any]]) -> bool:
        # Real hosts wait on the network; the in-process fake does not, and at 10,000 fake
        # hosts threads would only add overhead.
        return any(kind != "fake" for _, kind, _ in targets)

    def _probe(self, host_id: int, kind: str, ref: Any) -> Probe:
        try:
            driver = self.drivers.hypervisor(kind)
            return Probe(host_id, driver.probe(ref), driver.poll_all(ref))
        except (HostUnreachable, DriverError, OSError, TimeoutError) as exc:
            refused = isinstance(exc, HostKeyMismatch)
            return Probe(host_id, error=str(exc) or type(exc).__name__, refused=refused)

    def _apply(
        self, session: Session, probe: Probe, busy: set[int], states: dict[int, int]
    ) -> list[dict[str, Any]]:
        # VMs are locked before their host, the order every writer follows.
        placed = session.scalars(
            select(Vm)
            .where(Vm.host_id == probe.host_id, Vm.state != 6)
            .order_by(Vm.id)
            .with_for_update()
        ).all()
        host = session.get(Host, probe.host_id, with_for_update=True, populate_existing=True)
        if host is None:
            return []
        states[host.id] = host.state  # to tell watchers of the hosts whose state changes
        vms = [vm for vm in placed if vm.id not in busy and vm.updated_at < self._probed_at]
        if probe.facts is None:
            return self._missed(host, vms, probe, session)
        if host.fenced:
            self._answered(session, host, probe.facts)
            self._clean_fenced(host, probe.guests, list(placed))
            return []
        changes = self._reconcile(session, vms, probe.guests)
        self._answered(session, host, probe.facts)
        return changes

    def _answered(self, session: Session, host: Host, facts: HostFacts) -> None:
        host.missed_probes, host.error_since, host.last_seen = 0, None, now()
        if host.state in (INIT, ERROR, 1, 5, 6):
            host.state = MONITORED
        host.total_cpu, host.total_memory_mb = facts.total_cpu, facts.total_memory_mb
        host.free_disk_mb = facts.free_disk_mb
        host.last_error = ""
        if facts.host_key and not host.host_key:
            log.info("host %s: pinned SSH host key %s", host.name, facts.host_key[:40])
            host.host_key = facts.host_key
        if facts.node_version and host.node_version != facts.node_version:
            host.node_version = facts.node_version
        if facts.hypervisors and list(facts.hypervisors) != list(host.hypervisors):
            host.hypervisors = list(facts.hypervisors)
        # What the probe found joins the host's template (as OpenNebula's monitoring does),
        # where SCHED_REQUIREMENTS can read it: KVM = "YES", HOSTNAME, QEMU_VERSION ...
        found = {k: v for k, v in facts.attributes.items() if host.template.get(k) != v}
        if found:
            host.template = {**host.template, **found}
        session.add(
            HostSample(
                host_id=host.id,
                at=now(),
                used_cpu=facts.used_cpu,
                used_memory_mb=facts.used_memory_mb,
            )
        )

    def _missed(
        self, host: Host, vms: list[Vm], probe: Probe, session: Session
    ) -> list[dict[str, Any]]:
        error = probe.error
        host.missed_probes += 1
        host.last_error = error[:2000]
        if host.missed_probes < self.error_after and not probe.refused:
            return []
        if host.state not in (ERROR, DISABLED):
            log.warning("host %s missed %d probes: %s", host.name, host.missed_probes, error)
            host.state, host.error_since = ERROR, now()
        changes = []
        for vm in vms:
            if (vm.state, vm.lcm_state) == machine.RUNNING:
                vm.state, vm.lcm_state = machine.UNKNOWN
                vm.error, vm.updated_at = f"host {host.name} does not answer: {error}", now()
                history(session, vm, "monitor: host unreachable", None, error)
                changes.append(vm_change(vm))
        return changes

    def _reconcile(
        self, session: Session, vms: list[Vm], guests: list[GuestStatus]
    ) -> list[dict[str, Any]]:
        seen = {g.vm_id: g for g in guests}
        changes = []
        for vm in vms:
            guest = seen.get(vm.id)
            current = (vm.state, vm.lcm_state)
            if guest is not None and guest.state == "running":
                session.add(_sample(vm.id, guest))
            if guest is not None and guest.runtime and dict(guest.runtime) != vm.runtime:
                vm.runtime = dict(guest.runtime)
            if current == machine.RUNNING and (guest is None or guest.state != "running"):
                vm.state, vm.lcm_state = machine.POWEROFF
                vm.error = "the guest is not running on its host any more"
                history(session, vm, "monitor: guest gone", None, vm.error)
            elif current == machine.UNKNOWN and guest is not None and guest.state == "running":
                vm.state, vm.lcm_state = machine.RUNNING
                vm.error = ""
                history(session, vm, "monitor: guest back", None)
            else:
                continue
            vm.updated_at = now()
            changes.append(vm_change(vm))
        return changes

    def _clean_fenced(self, host: Host, guests: list[GuestStatus], vms: list[Vm]) -> None:
        """Remove guests of VMs that were recreated elsewhere: never two copies running."""
        mine = {vm.id for vm in vms}
        driver = self.drivers.hypervisor(host.hypervisor)
        for guest in guests:
            if guest.vm_id in mine:
                continue
            try:
                driver.cleanup(host_ref(host), guest.deploy_id)
            except (HostUnreachable, DriverError) as exc:
                log.warning(
                    "could not remove stale guest %s on %s: %s", guest.deploy_id, host.name, exc
                )

    def _failure_policy(self, session: Session, busy: set[int]) -> list[dict[str, Any]]:
        changes = []
        failed = session.scalars(
            select(Host).where(Host.state == ERROR, Host.fenced.is_(False))
        ).all()
        for host in failed:
            cluster = session.get(Cluster, host.cluster_id)
            if cluster is None or not cluster.recreate_on_host_failure:
                continue
            # Whole seconds: `<=` makes the grace at least its length, never a rounded-down one.
            if host.error_since is None or now() - host.error_since <= cluster.host_failure_grace:
                continue
            host.fenced = True
            log.warning("host %s failed: fencing it and recreating its VMs elsewhere", host.name)
            vms = session.scalars(select(Vm).where(Vm.host_id == host.id, Vm.state != 6)).all()
            for vm in vms:
                if vm.id in busy:
                    continue
                if (vm.state, vm.lcm_state) == machine.RUNNING:
                    # Not marked yet (it changed in the same second as the probe that failed):
                    # its history still tells why it moves.
                    history(session, vm, "monitor: host unreachable", None, host.last_error)
                requeue(session, vm, None, "recreate", f"host {host.name} failed")
                changes.append(vm_change(vm))
        return changes

    def _expire_samples(self, session: Session) -> None:
        cutoff = now() - self.retention
        session.execute(delete(HostSample).where(HostSample.at < cutoff))
        session.execute(delete(VmSample).where(VmSample.at < cutoff))


def _sample(vm_id: int, guest: GuestStatus) -> VmSample:
    figures = guest.figures
    return VmSample(
        vm_id=vm_id,
        at=now(),
        cpu=float(figures.get("cpu", 0.0)),
        memory_mb=int(figures.get("memory_mb", 0)),
        net_rx=int(figures.get("net_rx", 0)),
        net_tx=int(figures.get("net_tx", 0)),
    )


def host_change(host: Host) -> dict[str, Any]:
    """Return the event of a host's state change (read inside the unit of work)."""
    return {
        "obj_id": host.id,
        "owner_id": host.owner_id,
        "group_id": host.group_id,
        "state": host.state,
        "error": host.last_error,
        "perms": host.perms,
    }
