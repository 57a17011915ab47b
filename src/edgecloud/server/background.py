"""The front-end's background services: placement, the lifecycle engine and the monitor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecloud.server.config import Settings
from edgecloud.server.datastore.importer import Importer
from edgecloud.server.db.engine import Store
from edgecloud.server.events import EventBus
from edgecloud.server.lifecycle.drivers import Drivers
from edgecloud.server.lifecycle.engine import Engine
from edgecloud.server.lifecycle.placement import Placer
from edgecloud.server.metrics import Metrics
from edgecloud.server.monitor.monitor import Monitor
from edgecloud.server.provision.runner import Provisioner


@dataclass
class Background:
    """The loops that turn requests into running workloads, and watch them."""

    engine: Engine
    placer: Placer
    monitor: Monitor
    importer: Importer
    provisioner: Provisioner

    def start(self) -> None:
        """Start every loop (the engine first: it takes over orphaned operations)."""
        self.engine.start()
        self.placer.start()
        self.monitor.start()
        self.importer.start()
        self.provisioner.start()

    def stop(self) -> None:
        """Stop every loop, waiting for running steps."""
        self.provisioner.stop()
        self.placer.stop()
        self.monitor.stop()
        self.importer.stop()
        self.engine.stop()

    def wake(self) -> None:
        """Look for new work now."""
        self.placer.wake()
        self.engine.wake()


def driver_options(settings: Settings) -> dict[str, dict[str, object]]:
    """Return per-driver options derived from the settings."""
    fake_dir = (
        Path(settings.fake_state_dir) if settings.fake_state_dir else settings.home / "fake-hosts"
    )
    node: dict[str, object] = {"key_dir": settings.home / "ssh", "agents": settings.node_agents}
    return {"fake": {"state_dir": fake_dir}, "kvm": node, "lxc": node, "microvm": node}


def build(
    settings: Settings,
    store: Store,
    events: EventBus,
    metrics: Metrics,
    drivers: Drivers | None = None,
) -> Background:
    """Wire the loops to the store, the drivers and the event bus."""
    drivers = drivers or Drivers(driver_options(settings))
    engine = Engine(
        store,
        drivers,
        events,
        workers=settings.workers,
        lease_seconds=settings.lease_seconds,
        on_done=metrics.observe_operation,
    )
    placer = Placer(
        store,
        drivers,
        policy=settings.scheduler_policy,
        interval=settings.scheduler_interval,
        on_placed=engine.wake,
        observe=metrics.observe_scheduler,
    )
    monitor = Monitor(
        store,
        drivers,
        events,
        interval=settings.monitor_interval,
        error_after=settings.host_error_after,
        retention_seconds=settings.monitoring_retention_seconds,
    )
    provisioner = Provisioner(
        store,
        settings.home,
        events,
        drivers=dict(settings.provision_drivers),
        stand_in=settings.provision_stand_in,
        host_timeout=settings.provision_host_timeout,
        wake_monitor=monitor.wake,
    )
    return Background(engine, placer, monitor, Importer(store, settings.home), provisioner)
