"""The placement loop: snapshot the store, ask the (pure) scheduler for a plan, commit it.

The scheduler works on a read-only snapshot and may be wrong by the time it answers (another
worker placed VMs, a host failed); each placement is therefore committed with a re-check of
the host's capacity under its row lock (capacity.reserve). A placement that no longer fits is
dropped and the VM stays PENDING for the next round. There is no cap on placements per round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from edgecloud.server.db.engine import Store
from edgecloud.server.db.models import Cluster, ClusterVnet, Host, Operation, Vm, now
from edgecloud.server.errors import ApiError
from edgecloud.server.lifecycle import capacity, machine
from edgecloud.server.lifecycle.drivers import Drivers
from edgecloud.server.scheduler.snapshot import ClusterView, HostView, Snapshot, VmDemand
from edgecloud.server.scheduler.stack import plan
from edgecloud.server.services.vm_lifecycle import start_plan

log = logging.getLogger("edgecloud.scheduler")
PENDING = 1


class Placer:
    """Places PENDING VMs on hosts, round after round."""

    def __init__(
        self,
        store: Store,
        drivers: Drivers,
        *,
        policy: str = "striping",
        interval: float = 1.0,
        batch: int = 5000,
        on_placed: Callable[[], None] | None = None,
        observe: Callable[[float, int], None] | None = None,
    ) -> None:
        """Prepare the loop; nothing runs before start()."""
        self.store = store
        self.drivers = drivers
        self.policy = policy
        self.interval = interval
        self.batch = batch
        self.on_placed = on_placed or (lambda: None)
        self.observe = observe or (lambda seconds, placed: None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start placing."""
        self._thread = threading.Thread(target=self._loop, name="ec-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current round."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        """Run a round now (a VM was created or released, a host freed capacity)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                placed = self.run_once()
            except Exception:
                log.exception("scheduling round failed")
                placed = 0
            if placed < self.batch:  # a full batch means more is waiting: go on at once
                self._wake.wait(self.interval)
                self._wake.clear()

    def run_once(self) -> int:
        """Place what can be placed now; return how many VMs were placed."""
        started = time.perf_counter()
        with self.store.read() as session:
            demands = pending_demands(session, self.batch)
            if not demands:
                return 0
            snap = snapshot(session, self.drivers)
        result = plan(demands, snap, self.policy)
        placed = self._commit(result.placements, result.unplaced)
        self.observe(time.perf_counter() - started, placed)
        if placed:
            self.on_placed()
        return placed

    def _commit(self, placements: Sequence[object], unplaced: dict[int, str]) -> int:
        placed = 0
        with self.store.write() as session:
            for placement in placements:
                placed += self._place(session, placement.vm_id, placement.host_id)  # type: ignore[attr-defined]
            for vm_id, reason in unplaced.items():
                vm = session.get(Vm, vm_id)
                if vm is not None and vm.error != reason:
                    vm.error = reason
        return placed

    def _place(self, session: Session, vm_id: int, host_id: int) -> int:
        vm = session.get(Vm, vm_id, with_for_update=True)
        if vm is None or vm.state != PENDING or _busy(session, vm_id):
            return 0
        try:
            host = capacity.reserve(session, host_id, vm)
        except ApiError as exc:  # the snapshot was stale: try again next round
            log.debug("placement of VM %s on host %s dropped: %s", vm_id, host_id, exc)
            return 0
        vm.host_id, vm.cluster_id, vm.error, vm.updated_at = host.id, host.cluster_id, "", now()
        resume_from = vm.resume_from
        vm.resume_from = ""
        steps = machine.plan_for("deploy", machine.PENDING, resume_from=resume_from)
        assert steps is not None
        start_plan(
            session,
            vm,
            "deploy",
            steps,
            {"host_id": host.id, "resume_from": resume_from},
            vm.owner_id,
        )
        return 1


def _busy(session: Session, vm_id: int) -> bool:
    stmt = select(Operation.id).where(
        Operation.object_type == "VM",
        Operation.object_id == vm_id,
        Operation.state.in_(("pending", "running")),
    )
    return session.scalar(stmt.limit(1)) is not None


def pending_demands(session: Session, limit: int) -> list[VmDemand]:
    """Return what the oldest PENDING VMs (without an operation in flight) ask for."""
    in_flight = exists().where(
        Operation.object_type == "VM",
        Operation.object_id == Vm.id,
        Operation.state.in_(("pending", "running")),
    )
    vnet_clusters: dict[int, set[int]] = {}
    for vnet_id, cluster_id in session.execute(select(ClusterVnet.vnet_id, ClusterVnet.cluster_id)):
        vnet_clusters.setdefault(vnet_id, set()).add(cluster_id)
    rows = session.execute(
        select(Vm.id, Vm.cpu, Vm.memory_mb, Vm.disk_mb, Vm.hypervisor, Vm.template)
        .where(Vm.state == PENDING, ~in_flight)
        .order_by(Vm.id)
        .limit(limit)
    ).all()
    return [
        VmDemand(
            vm_id=vm_id,
            cpu=cpu,
            memory_mb=memory_mb,
            disk_mb=disk_mb,
            hypervisor=hypervisor,
            cluster_ids=_nic_clusters(template, vnet_clusters),
            requirements=str(template.get("SCHED_REQUIREMENTS", "")),
            rank=str(template.get("SCHED_RANK", "")),
            host_id=None,
        )
        for vm_id, cpu, memory_mb, disk_mb, hypervisor, template in rows
    ]


def _nic_clusters(
    template: dict[str, object], vnet_clusters: dict[int, set[int]]
) -> frozenset[int] | None:
    """Return the clusters that have every vnet the VM's NICs use (None: no NICs)."""
    nics = template.get("NIC") or []
    allowed: set[int] | None = None
    for nic in nics if isinstance(nics, list) else []:
        clusters = vnet_clusters.get(int(nic.get("NETWORK_ID", -1)), set())
        allowed = set(clusters) if allowed is None else allowed & clusters
    return None if allowed is None else frozenset(allowed)


def snapshot(session: Session, drivers: Drivers) -> Snapshot:
    """Read the hosts and clusters the scheduler may use (hosts with a driver, not fenced)."""
    clusters = {
        c.id: ClusterView(
            id=c.id,
            reserved_cpu=c.reserved_cpu,
            reserved_memory_mb=c.reserved_memory_mb,
            attributes=dict(c.template),
        )
        for c in session.scalars(select(Cluster))
    }
    # Plain rows, not ORM objects: at 10,000 hosts the snapshot is most of a round's cost.
    rows = session.execute(
        select(
            Host.id,
            Host.name,
            Host.cluster_id,
            Host.state,
            Host.hypervisor,
            Host.total_cpu,
            Host.total_memory_mb,
            Host.used_cpu,
            Host.used_memory_mb,
            Host.running_vms,
            Host.free_disk_mb,
            Host.template,
            Host.hypervisors,
        ).where(Host.fenced.is_(False), Host.state.in_(capacity.ELIGIBLE_STATES))
    )
    usable: dict[str, bool] = {}
    hosts = []
    for row in rows:
        kind = row.hypervisor
        if kind not in usable:
            usable[kind] = drivers.available(kind)
        if not usable[kind]:
            continue
        hosts.append(
            HostView(
                id=row.id,
                name=row.name,
                cluster_id=row.cluster_id,
                state=row.state,
                hypervisor=kind,
                total_cpu=row.total_cpu,
                total_memory_mb=row.total_memory_mb,
                used_cpu=row.used_cpu,
                used_memory_mb=row.used_memory_mb,
                running_vms=row.running_vms,
                free_disk_mb=row.free_disk_mb or None,  # None: not monitored yet, do not filter
                attributes=row.template,
                kinds=tuple(k for k in row.hypervisors or () if k != kind),
            )
        )
    return Snapshot(hosts=hosts, clusters=clusters)
