"""Prometheus metrics: hosts and VMs by state, operation durations, scheduler and API latency."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from edgecloud.api.infra import HOST_STATES
from edgecloud.api.states import vm_state_name
from edgecloud.server.db.engine import Store
from edgecloud.server.db.models import Host, Vm

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _StateCollector(Collector):
    """Counts hosts and VMs by state from the store at scrape time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        hosts = GaugeMetricFamily("edgecloud_hosts", "Hosts by state", labels=["state"])
        vms = GaugeMetricFamily("edgecloud_vms", "VMs by state (DONE excluded)", labels=["state"])
        with self.store.read() as session:
            for state, count in session.execute(
                select(Host.state, func.count()).group_by(Host.state)
            ):
                hosts.add_metric([HOST_STATES.get(state, str(state))], count)
            rows = session.execute(
                select(Vm.state, func.count()).where(Vm.state != 6).group_by(Vm.state)
            )
            for state, count in rows:
                vms.add_metric([vm_state_name(state)], count)
        yield hosts
        yield vms


class Metrics:
    """The front-end's metrics, in a registry of its own (one per app)."""

    def __init__(self, store: Store) -> None:
        """Create the metrics and register the store-backed gauges."""
        self.registry = CollectorRegistry()
        self.registry.register(_StateCollector(store))
        self.operations = Histogram(
            "edgecloud_operation_seconds",
            "Duration of lifecycle operations, from request to end",
            ["kind", "result"],
            buckets=(0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
            registry=self.registry,
        )
        self.scheduler = Histogram(
            "edgecloud_scheduler_round_seconds",
            "Duration of one placement round (snapshot, plan, commit)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.api = Histogram(
            "edgecloud_api_request_seconds",
            "API latency by method and route",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_operation(self, kind: str, result: str, seconds: float) -> None:
        """Record how long an operation took."""
        self.operations.labels(kind, result).observe(seconds)

    def observe_scheduler(self, seconds: float, placed: int) -> None:
        """Record a placement round."""
        del placed
        self.scheduler.observe(seconds)

    def observe_api(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one API call."""
        self.api.labels(method, route, str(status)).observe(seconds)

    def render(self) -> bytes:
        """Return the Prometheus text exposition."""
        return generate_latest(self.registry)
