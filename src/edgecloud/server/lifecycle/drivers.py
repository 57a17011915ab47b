"""The drivers the lifecycle uses, built from the registry by each host's hypervisor kind."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.drivers import registry
from edgecloud.drivers.base import HostRef, Hypervisor
from edgecloud.server.db.models import ClusterDatastore, Datastore, Host

log = logging.getLogger("edgecloud.server.drivers")


class Drivers:
    """Builds each driver once, with the options the front-end's settings give it."""

    def __init__(self, options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Keep per-driver options, e.g. {"fake": {"state_dir": ...}}."""
        self._options = dict(options or {})
        self._built: dict[str, Hypervisor] = {}
        self._lock = threading.Lock()

    def hypervisor(self, kind: str) -> Hypervisor:
        """Return the hypervisor driver for a host kind; LookupError names what exists."""
        with self._lock:
            driver = self._built.get(kind)
            if driver is None:
                driver = registry.create("hypervisor", kind, **self._options.get(kind, {}))
                self._built[kind] = driver
            return driver

    def close(self) -> None:
        """Let each driver built so far drop what it holds open (node agents, connections).

        Drivers are shared by kind, so one may serve two kinds: it is closed once.
        """
        with self._lock:
            built = list({id(d): d for d in self._built.values()}.values())
        for driver in built:
            close = getattr(driver, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("closing the %s driver", type(driver).__name__)

    def available(self, kind: str) -> bool:
        """Tell whether this build has a driver for `kind`."""
        return kind in registry.available("hypervisor")


def host_ref(host: Host) -> HostRef:
    """Return what a driver needs to know about a host (its template, and declared capacity)."""
    attributes: dict[str, Any] = {}
    if host.total_cpu > 0:
        attributes["CPU"] = str(host.total_cpu)
    if host.total_memory_mb > 0:
        attributes["MEMORY"] = str(host.total_memory_mb)
    attributes.update(host.template)
    return HostRef(
        id=host.id,
        name=host.name,
        attributes=attributes,
        address=host.address or host.name,
        port=host.port,
        transport=host.transport,
        host_key=host.host_key,
        root=host.root,
    )


def replica_of(session: Session, host: Host | None) -> HostRef | None:
    """Return the replica host named by REPLICA_HOST (a name or id) on a system datastore
    of the host's cluster, if there is one (and it is not a fake host)."""
    if host is None or host.hypervisor == "fake":
        return None
    stmt = (
        select(Datastore.template)
        .join(ClusterDatastore, ClusterDatastore.datastore_id == Datastore.id)
        .where(ClusterDatastore.cluster_id == host.cluster_id, Datastore.kind == "system")
        .order_by(Datastore.id)
    )
    for template in session.scalars(stmt):
        name = str(template.get("REPLICA_HOST", "")).strip()
        if not name:
            continue
        by = Host.id == int(name) if name.isdigit() else Host.name == name
        replica = session.scalars(select(Host).where(by)).first()
        if replica is not None:
            return host_ref(replica)
    return None
