"""The lifecycle engine: workers that claim operations and run their steps on hosts.

Every step is persisted before and after it runs. A worker holds a lease on the
operation it runs and renews it; when a front-end dies its leases expire and another
worker (or the restarted front-end) takes the operation over. A step left "running"
may or may not have happened on the host, so it is checked there (poll) before it is
run again; driver actions are idempotent, so re-running one is safe either way.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from edgecloud.drivers.base import DriverError, GuestSpec, HostRef, HostUnreachable
from edgecloud.server.db.engine import Store
from edgecloud.server.db.models import (
    Host,
    Image,
    Operation,
    OperationStep,
    Vm,
    now,
)
from edgecloud.server.events import EventBus
from edgecloud.server.lifecycle import capacity
from edgecloud.server.lifecycle.drivers import Drivers, host_ref, replica_of
from edgecloud.server.lifecycle.machine import UNDO, Plan, Step
from edgecloud.server.lifecycle.network import network_of
from edgecloud.server.lifecycle.steps import StepRunner
from edgecloud.server.services.vm_lifecycle import (
    DISK_STEPS,
    disk_settle,
    drop_nic,
    finish_plan,
    history,
)
from edgecloud.server.services.vm_relocate import settle

log = logging.getLogger("edgecloud.lifecycle")
STEP_ERRORS = (DriverError, HostUnreachable, LookupError, TimeoutError, OSError)


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to run one operation, read once at its start."""

    op_id: int
    vm_id: int
    plan: Plan
    spec: GuestSpec
    host: HostRef | None
    host_kind: str
    target: HostRef | None
    hard: bool
    params: dict[str, Any] = field(default_factory=dict)  # the operation's, e.g. nic_id
    replica: HostRef | None = None  # the replica host of the cluster's system datastore
    target_replica: HostRef | None = None  # the same for the target's cluster


def _network(
    session: Session, vm: Vm, host: Host | None, nics: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Return the VM's NICs resolved for a real host (fake hosts plug nothing in)."""
    if host is None or host.hypervisor == "fake":
        return {}
    return network_of(session, vm, host, nics)


class Engine:
    """Runs queued operations with a pool of workers."""

    def __init__(
        self,
        store: Store,
        drivers: Drivers,
        events: EventBus | None = None,
        *,
        workers: int = 8,
        lease_seconds: float = 10.0,
        poll_seconds: float = 0.2,
        on_done: Callable[[str, str, float], None] | None = None,
    ) -> None:
        """Prepare the engine; nothing runs before start()."""
        self.store = store
        self.drivers = drivers
        self.events = events or EventBus()
        self.instance = f"fe-{uuid.uuid4().hex[:12]}"
        self.workers = workers
        self.lease = lease_seconds
        self.poll = poll_seconds
        self.on_done = on_done or (lambda kind, result, seconds: None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._inflight: set[int] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ec-worker")
        self._threads: list[threading.Thread] = []

    # --- running ----------------------------------------------------------------------
    def start(self) -> None:
        """Take over orphaned operations, then start dispatching."""
        self.reclaim_orphans()
        for target, name in ((self._dispatch_loop, "ec-dispatch"), (self._lease_loop, "ec-lease")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop claiming work and wait for running steps to finish."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def wake(self) -> None:
        """Look for new work now rather than at the next poll."""
        self._wake.set()

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._dispatch_once()
            except Exception:  # a store hiccup must not kill the dispatcher
                log.exception("dispatch failed")
            self._wake.wait(self.poll)
            self._wake.clear()

    def _dispatch_once(self) -> None:
        with self._lock:
            free = self.workers - len(self._inflight)
        if free <= 0:
            return
        for op_id in self.claim(free):
            with self._lock:
                self._inflight.add(op_id)
            self._pool.submit(self._run_guarded, op_id)

    def _run_guarded(self, op_id: int) -> None:
        try:
            self.run(op_id)
        except Exception:
            log.exception("operation %s crashed its worker; its lease will expire", op_id)
        finally:
            with self._lock:
                self._inflight.discard(op_id)
            self._wake.set()

    def _lease_loop(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self._renew_leases()
                self.reclaim_orphans()
            except Exception:
                log.exception("lease upkeep failed")

    # --- claiming -----------------------------------------------------------------------
    def claim(self, limit: int) -> list[int]:
        """Take up to `limit` pending operations for this front-end."""
        claimed: list[int] = []
        with self.store.write() as session:
            ids = session.scalars(
                select(Operation.id)
                .where(Operation.state == "pending")
                .order_by(Operation.id)
                .limit(limit)
            ).all()
            for op_id in ids:
                result = session.execute(
                    update(Operation)
                    .where(Operation.id == op_id, Operation.state == "pending")
                    .values(
                        state="running",
                        claimed_by=self.instance,
                        lease_until=time.time() + self.lease,
                        updated_at=now(),
                        version=Operation.version + 1,
                    )
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(op_id)
        return claimed

    def _renew_leases(self) -> None:
        with self.store.write() as session:
            session.execute(
                update(Operation)
                .where(Operation.claimed_by == self.instance, Operation.state == "running")
                .values(lease_until=time.time() + self.lease)
                .execution_options(synchronize_session=False)
            )

    def reclaim_orphans(self) -> int:
        """Put back in the queue the running operations whose worker's lease expired."""
        cutoff = time.time()
        with self.store.write() as session:
            result = session.execute(
                update(Operation)
                .where(Operation.state == "running", Operation.lease_until < cutoff)
                .where(Operation.claimed_by != self.instance)
                .values(state="pending", claimed_by="", version=Operation.version + 1)
                .execution_options(synchronize_session=False)
            )
        count: int = result.rowcount  # type: ignore[attr-defined]
        if count:
            log.warning("took over %d operation(s) of a front-end that stopped", count)
            self.wake()
        return count

    # --- one operation --------------------------------------------------------------------
    def run(self, op_id: int) -> None:
        """Run (or resume) one claimed operation to its end."""
        job, steps = self._load(op_id)
        runner = StepRunner(self.drivers, job, self._record_images)
        for seq, step in enumerate(job.plan.steps):
            state = steps[seq]
            if state == "done":
                continue
            if state == "running" and runner.happened(step.action):
                self._step_done(job, seq)  # it ran before a crash: the host says so
                continue
            self._step_begin(job, seq, step)
            try:
                runner.do(step.action)
            except STEP_ERRORS as exc:
                if not job.plan.best_effort:
                    self._fail(job, seq, step, runner, exc)
                    return
                log.warning("operation %s: %s failed, going on: %s", job.op_id, step.action, exc)
                self._step_done(job, seq, error=f"{step.action}: {exc} (ignored)")
                continue
            self._step_done(job, seq)
        self._finish(job)

    def _load(self, op_id: int) -> tuple[Job, list[str]]:
        with self.store.read() as session:
            op = session.get(Operation, op_id)
            assert op is not None
            vm = session.get(Vm, op.object_id)
            assert vm is not None
            host = session.get(Host, vm.host_id) if vm.host_id is not None else None
            target_id = op.params.get("host_id") if op.params["plan"]["moves_host"] else None
            target = session.get(Host, target_id) if target_id is not None else None
            steps = session.scalars(
                select(OperationStep.state)
                .where(OperationStep.operation_id == op_id)
                .order_by(OperationStep.seq)
            ).all()
            template = dict(vm.template)
            if "nics" in op.params:  # moving to another cluster's networks (vm_relocate)
                template["NIC"] = op.params["nics"]
            job = Job(
                op_id=op.id,
                vm_id=vm.id,
                plan=Plan.from_params(op.params["plan"]),
                spec=GuestSpec(
                    vm.id,
                    vm.name,
                    template,
                    vm.deploy_id,
                    vm.hypervisor,
                    _network(session, vm, target or host, template.get("NIC")),
                ),
                host=host_ref(host) if host else None,
                host_kind=host.hypervisor if host else "",
                target=host_ref(target) if target else None,
                hard=bool(op.params.get("hard", False)),
                params=dict(op.params),
                replica=replica_of(session, host),
                target_replica=replica_of(session, target),
            )
        return job, list(steps)

    def _record_images(self, changed: dict[int, tuple[str, int]]) -> None:
        """Keep the checksum and size of images whose persistent disk was copied back."""
        with self.store.write() as session:
            for image_id, (checksum, size) in changed.items():
                image = session.get(Image, image_id)
                if image is not None:
                    image.checksum, image.bytes = checksum, size

    def _step_row(self, session: Session, job: Job, seq: int) -> OperationStep:
        row = session.scalars(
            select(OperationStep).where(
                OperationStep.operation_id == job.op_id, OperationStep.seq == seq
            )
        ).one()
        return row

    def _step_begin(self, job: Job, seq: int, step: Step) -> None:
        with self.store.write() as session:
            row = self._step_row(session, job, seq)
            row.state, row.started_at = "running", now()
            vm = session.get(Vm, job.vm_id, with_for_update=True)
            assert vm is not None
            vm.state, vm.lcm_state, vm.updated_at = 3, step.lcm, now()
            history(session, vm, step.action, None, f"operation {job.op_id}")
            change = vm_change(vm)
        self.events.publish("vm", **change)

    def _step_done(self, job: Job, seq: int, error: str = "") -> None:
        with self.store.write() as session:
            row = self._step_row(session, job, seq)
            row.state, row.ended_at, row.error = "done", now(), error

    def _finish(self, job: Job) -> None:
        with self.store.write() as session:
            op = session.get(Operation, job.op_id)
            vm = session.get(Vm, job.vm_id, with_for_update=True)
            assert op is not None
            assert vm is not None
            finish_plan(session, vm, job.plan, op.params)
            vm.error = ""
            op.state, op.ended_at, op.updated_at, op.claimed_by = "done", now(), now(), ""
            self.on_done(op.kind, "done", max(0.0, time.time() - op.created_at))
            history(session, vm, op.kind.removeprefix("vm.") + " done", None, f"operation {op.id}")
            change = vm_change(vm)
        self.events.publish("vm", **change)
        self.events.publish("operation", job.op_id, None, None, state="done")

    def _fail(self, job: Job, seq: int, step: Step, runner: StepRunner, exc: BaseException) -> None:
        message = f"{step.action}: {exc}"
        log.warning("operation %s: %s", job.op_id, message)
        undo_errors = self._undo(job, seq, runner)
        with self.store.write() as session:
            row = self._step_row(session, job, seq)
            row.state, row.error, row.ended_at = "failed", message, now()
            op = session.get(Operation, job.op_id)
            vm = session.get(Vm, job.vm_id, with_for_update=True)
            assert op is not None
            assert vm is not None
            if job.plan.moves_host:
                capacity.release(session, op.params.get("host_id"), vm)
                settle(session, vm, op.params, done=False)
            vm.state, vm.lcm_state = step.fail_to
            if step.action == "nic_attach":
                drop_nic(session, vm, op.params.get("nic_id"))  # not plugged: not kept
            if step.action in DISK_STEPS:
                disk_settle(session, vm, step.action, op.params, done=False)
            vm.error = message + "".join(f"; undo {e}" for e in undo_errors)
            vm.updated_at = now()
            op.state, op.error, op.claimed_by = "failed", vm.error, ""
            op.ended_at = op.updated_at = now()
            self.on_done(op.kind, "failed", max(0.0, time.time() - op.created_at))
            history(session, vm, f"{step.action} failed", None, message)
            change = vm_change(vm)
        self.events.publish("vm", **change)
        self.events.publish("operation", job.op_id, None, None, state="failed")

    def _undo(self, job: Job, failed_seq: int, runner: StepRunner) -> list[str]:
        """Undo, in reverse, what the steps before (and the failed step itself) left on hosts."""
        errors = []
        for step in reversed(job.plan.steps[: failed_seq + 1]):
            undo = UNDO.get(step.action)
            if undo is None:
                continue
            try:
                runner.do(undo)
            except STEP_ERRORS as exc:
                errors.append(f"{undo}: {exc}")
        return errors


def vm_change(vm: Vm) -> dict[str, Any]:
    """Return the event of a VM's state change (read inside the unit of work)."""
    return {
        "obj_id": vm.id,
        "owner_id": vm.owner_id,
        "group_id": vm.group_id,
        "state": vm.state,
        "lcm_state": vm.lcm_state,
        "host_id": vm.host_id,
        "error": vm.error,
        "perms": vm.perms,
    }
