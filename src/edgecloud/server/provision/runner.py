"""The provisioner: runs each provision's operation on a thread of its own, step by step.

It finds its work in the store: provisions PENDING an operation, or DELETING with nobody
running the delete. The front-end running one stamps it (`params._runner`) and keeps its
`updated_at` fresh; a provision left mid-step by a front-end that stopped is marked ERROR
(`retry` resumes it), never left looking busy.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from edgecloud.api.provision import PROVISION_STATES
from edgecloud.drivers import registry
from edgecloud.drivers.base import DriverError
from edgecloud.drivers.provision.api import Provider
from edgecloud.provision import TemplateError
from edgecloud.server import secrets
from edgecloud.server.db.base import now
from edgecloud.server.db.engine import Store
from edgecloud.server.db.models import Provision
from edgecloud.server.errors import ApiError
from edgecloud.server.events import EventBus
from edgecloud.server.provision import steps
from edgecloud.server.provision.register import RegisterError, Registrar, owner_of
from edgecloud.server.provision.steplog import StepLog
from edgecloud.server.services.provisions import (
    CONFIGURING,
    DELETING,
    DEPLOYING,
    DONE,
    ERROR,
    PENDING,
    RUNNING,
    Provisions,
)

log = logging.getLogger("edgecloud.provision")

ORPHAN_SECONDS = 60  # a busy provision not touched this long lost its front-end
# What a failed step reports as its error: the message, as the component gave it.
EXPECTED = (DriverError, RegisterError, steps.StepError, ApiError, OSError, TemplateError)


class Provisioner:
    """Runs provision operations in the background of one front-end."""

    def __init__(
        self,
        store: Store,
        home: Path,
        events: EventBus,
        *,
        drivers: dict[str, str] | None = None,
        stand_in: bool = False,
        host_timeout: float = 300.0,
        wake_monitor: Callable[[], None] = lambda: None,
        interval: float = 1.0,
    ) -> None:
        self.store, self.home, self.events = store, home, events
        self.service = Provisions(home)
        self.drivers = dict(drivers or {})
        self.stand_in = stand_in
        self.host_timeout = host_timeout
        self.wake_monitor = wake_monitor
        self.interval = interval
        self.me = uuid.uuid4().hex[:12]
        self._providers: dict[str, Provider] = {}
        self._running: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- loop --------------------------------------------------------------------

    def start(self) -> None:
        """Start looking for work."""
        self._thread = threading.Thread(target=self._loop, name="provisioner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop: running operations end at their next step (or are found orphaned later)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            running = list(self._running.values())
        for thread in running:
            thread.join(timeout)

    def wake(self) -> None:
        """Look for work now (an operation was requested)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                for provision_id in self._claim():
                    self._launch(provision_id)
            except Exception:
                log.exception("provisioner round failed")
            self._wake.wait(self.interval)
            self._wake.clear()

    def _claim(self) -> list[int]:
        """Take the operations waiting to run; mark orphans ERROR; heartbeat ours."""
        claimed: list[int] = []
        stamp = now()
        with self._lock:
            mine = set(self._running)
        try:
            with self.store.write() as session:
                rows = session.scalars(
                    select(Provision).where(
                        Provision.state.in_((PENDING, DEPLOYING, CONFIGURING, DELETING))
                    )
                ).all()
                for row in rows:
                    runner = row.params.get("_runner")
                    if row.id in mine:
                        if stamp - row.updated_at >= 5:
                            row.updated_at = stamp
                        continue
                    fresh = stamp - row.updated_at < ORPHAN_SECONDS
                    if runner and runner != self.me and fresh:
                        continue  # another front-end runs it
                    if row.state in (DEPLOYING, CONFIGURING) or (runner and row.state != PENDING):
                        if runner == self.me or not fresh:
                            self._orphaned(row)
                        continue
                    row.params = {**row.params, "_runner": self.me}
                    row.updated_at = stamp
                    claimed.append(row.id)
        except StaleDataError:
            return []  # another front-end changed one meanwhile: next round
        return claimed

    def _orphaned(self, row: Provision) -> None:
        state = PROVISION_STATES.get(row.state, "?")
        row.last_error = (
            f"the front-end running it stopped during {row.operation} step "
            f"{row.step or 'start'} ({state}); retry to resume"
        )
        row.state, row.updated_at = ERROR, now()
        row.params = {k: v for k, v in row.params.items() if k != "_runner"}
        log.warning("provision %s: %s", row.id, row.last_error)

    def _launch(self, provision_id: int) -> None:
        thread = threading.Thread(
            target=self._run, args=(provision_id,), name=f"provision-{provision_id}", daemon=True
        )
        with self._lock:
            self._running[provision_id] = thread
        thread.start()

    # --- one operation ---------------------------------------------------------------

    def _run(self, provision_id: int) -> None:
        try:
            self._operation(provision_id)
        except Exception as exc:  # not a crash of the front-end: a named failure
            log.exception("provision %s failed", provision_id)
            self._finish(provision_id, ERROR, f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._running.pop(provision_id, None)

    def _operation(self, provision_id: int) -> None:
        with self.store.read() as session:
            row = session.get(Provision, provision_id)
            assert row is not None
            operation, params, resume = row.operation, dict(row.params), row.step
            tag, kind = row.tag, row.provider
            template = self.service.template_of(row)
        plan = steps.PLANS[operation]
        names = [name for name, _, _ in plan]
        first = names.index(resume) if resume in names else 0
        provider = self.provider(kind)
        owner = owner_of(self.store, provision_id)
        for name, step, state in plan[first:]:
            if self._stopping.is_set():  # retry resumes at this step
                self._set(provision_id, step=name)
                self._finish(
                    provision_id, ERROR, f"the front-end stopped before step {name}; retry"
                )
                return
            self._set(provision_id, state=state, step=name)
            steplog = StepLog(self.store, provision_id, operation, name)
            if resume and name == resume:
                steplog(f"resuming {operation} at step {name}")
            ctx = steps.Ctx(
                store=self.store,
                provision_id=provision_id,
                tag=tag,
                operation=operation,
                params=params,
                template=template,
                provider=provider,
                registrar=Registrar(self.store, provision_id, owner, steplog),
                log=steplog,
                home=self.home,
                host_timeout=self.host_timeout,
                wake_monitor=self.wake_monitor,
                configure=self._configurer(provider, template.provider_settings),
                stopping=self._stopping.is_set,
            )
            began = time.monotonic()
            try:
                step(ctx)
            except EXPECTED as exc:
                message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                steplog.failed(message)
                self._finish(provision_id, ERROR, f"{operation} step {name}: {message}")
                return
            except Exception as exc:
                log.exception("provision %s: step %s", provision_id, name)
                steplog.failed(f"{type(exc).__name__}: {exc}")
                self._finish(
                    provision_id, ERROR, f"{operation} step {name}: {type(exc).__name__}: {exc}"
                )
                return
            steplog(f"{name} done in {time.monotonic() - began:.2f} s")
            steplog.done()
        self._finish(provision_id, DONE if operation == "delete" else RUNNING, "")

    def _configurer(
        self, provider: Provider, settings: Mapping[str, Any]
    ) -> Callable[..., None] | None:
        """The host playbook runner, or None where the provider's hosts need none."""
        configures = getattr(provider, "configures", True)
        if callable(configures):
            configures = configures(settings)
        if configures is False:
            return None
        from edgecloud.provision.ansible import configure_hosts  # ansible only when used

        return configure_hosts

    # --- records -----------------------------------------------------------------

    def _set(self, provision_id: int, **changes: Any) -> None:
        with self.store.write() as session:
            row = session.get(Provision, provision_id, with_for_update=True)
            assert row is not None
            for key, value in changes.items():
                setattr(row, key, value)
            row.updated_at = now()
            event = (row.id, row.owner_id, row.group_id, row.perms, row.state, row.step)
        self._publish(*event)

    def _finish(self, provision_id: int, state: int, error: str) -> None:
        with self.store.write() as session:
            row = session.get(Provision, provision_id, with_for_update=True)
            if row is None:
                return
            row.state, row.last_error, row.updated_at = state, error, now()
            row.params = {k: v for k, v in row.params.items() if k != "_runner"}
            if state != ERROR:
                row.step = ""
            event = (row.id, row.owner_id, row.group_id, row.perms, row.state, row.step)
        if error:
            log.warning("provision %s: %s", provision_id, error)
        self._publish(*event)

    def _publish(
        self, obj_id: int, owner: int, group: int, perms: int, state: int, step: str
    ) -> None:
        self.events.publish(
            "provision",
            obj_id,
            owner,
            group,
            perms=perms,
            state=PROVISION_STATES[state],
            step=step,
        )

    # --- providers ---------------------------------------------------------------

    def provider(self, kind: str) -> Provider:
        """The provider for a template's `provider` (one object per front-end)."""
        with self._lock:
            found = self._providers.get(kind)
            if found is None:
                found = self._build(kind)
                self._providers[kind] = found
            return found

    def _build(self, kind: str) -> Provider:
        name = self.drivers.get(kind, kind)
        base = self.home / "provision"
        options: dict[str, Any] = {"state_dir": base / name}
        if name == "aws":
            options["cipher"] = secrets.cipher(self.home)
            if self.stand_in:
                local = registry.create("provision", "local", state_dir=base / "stand-in")
                options["stand_in"] = local
        provider: Provider = registry.create("provision", name, **options)
        return provider
