"""one.host.*, one.cluster.*, one.datastore.* and their pools onto the infrastructure services.

Conventions where OpenNebula's differ from ours: a host's VM_MAD is its hypervisor
(`dummy` is our fake one), its IM_MAD is kept in its template as given; cluster -1 is the
default cluster 0; a datastore's TYPE, DS_MAD and TM_MAD come from its template and map
onto our kinds, drivers and transfers (`dummy` DS_MAD is `fs`, `dummy` TM_MAD `local`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Select, select

from edgecloud.api import infra as wire
from edgecloud.api.common import Chmod, Chown, Name
from edgecloud.server.db.models import Cluster, Datastore, Host, HostSample, now
from edgecloud.server.errors import InvalidInput
from edgecloud.server.services import objects
from edgecloud.server.services.clusters import Clusters
from edgecloud.server.services.datastores import Datastores
from edgecloud.server.services.hosts import Hosts
from edgecloud.server.xmlrpc import m_infra_render as render
from edgecloud.server.xmlrpc.core import Ctx, method, wire_body
from edgecloud.server.xmlrpc.m_system import (
    changed_template,
    chmod_bits,
    template_attrs,
)
from edgecloud.server.xmlrpc.pools import PoolFilter

HOSTS, CLUSTERS, DATASTORES = Hosts(), Clusters(), Datastores()
HYPERVISOR_OF_MAD = {"kvm": "kvm", "lxc": "lxc", "microvm": "microvm", "dummy": "fake"}
HOST_STATUS: dict[int, Literal["enabled", "disabled", "offline"]] = {
    0: "enabled",
    1: "disabled",
    2: "offline",
}
KEPT_HOST_ATTRS = ("IM_MAD", "VM_MAD")
_NAME: TypeAdapter[str] = TypeAdapter(Name)


def _cluster(cluster_id: int) -> int:
    return 0 if cluster_id == -1 else cluster_id


def _name(name: str) -> str:
    try:
        return _NAME.validate_python(name)
    except ValidationError as exc:
        raise InvalidInput("name", exc.errors()[0]["msg"]) from None


def _pool(
    model: Any, kind: str, ctx: Ctx, flag: int, start: int, end: int, *columns: Any
) -> tuple[Select[Any], Select[Any]]:
    """A pool's query (plain rows, no ORM objects to build), and the query of its ids."""
    base = select(*columns) if columns else select(model.__table__)
    stmt = PoolFilter(flag, start, end).apply(base, kind, ctx.principal)
    return stmt, stmt.with_only_columns(model.id)


# --- hosts ----------------------------------------------------------------------------


@method("one.host.allocate", str, str, str, int, defaults=(-1,), kind="allocate")
def host_allocate(ctx: Ctx, name: str, im_mad: str, vmm_mad: str, cluster_id: int) -> int:
    """Register a host; `vmm_mad` kvm, lxc, microvm or dummy (the fake hypervisor)."""
    objects.require_create(ctx.principal, "HOST")
    for field, mad in (("im_mad", im_mad), ("vmm_mad", vmm_mad)):
        if mad not in HYPERVISOR_OF_MAD:
            known = ", ".join(HYPERVISOR_OF_MAD)
            raise InvalidInput(field, f"{mad!r} is not supported; use one of {known}")
    body = wire_body(
        wire.HostCreate,
        name=name,
        cluster_id=_cluster(cluster_id),
        hypervisor=HYPERVISOR_OF_MAD[vmm_mad],
        template={"IM_MAD": im_mad, "VM_MAD": vmm_mad},
    )
    with ctx.frontend.store.write() as session:
        made = HOSTS.create(session, ctx.principal, body)
    ctx.frontend.wake_monitor()
    return made.id


@method("one.host.info", int, bool, defaults=(False,))
def host_info(ctx: Ctx, host_id: int, decrypt: bool) -> str:
    """A host with its capacity, VMs and latest monitoring."""
    with ctx.frontend.store.read() as session:
        row = HOSTS.load(session, ctx.principal, host_id)
        return render.hosts(session, [row], [row.id])[0]


@method("one.host.status", int, int, kind="action")
def host_status(ctx: Ctx, host_id: int, status: int) -> int:
    """0 enable, 1 disable, 2 offline."""
    if status not in HOST_STATUS:
        raise InvalidInput("status", f"{status} is not 0 (enabled), 1 (disabled) or 2 (offline)")
    body = wire.HostStatus(status=HOST_STATUS[status])
    with ctx.frontend.store.write() as session:
        HOSTS.set_status(session, ctx.principal, host_id, body)
    ctx.frontend.wake_monitor()
    return host_id


@method("one.host.update", int, str, int, defaults=(0,), kind="action")
def host_update(ctx: Ctx, host_id: int, text: str, append: int) -> int:
    """Replace (0) or merge into (1) a host's template (IM_MAD and VM_MAD stay)."""
    with ctx.frontend.store.write() as session:
        row = HOSTS.load(session, ctx.principal, host_id, "MANAGE")
        new = changed_template(row.template, text, append)
        new.update({k: row.template[k] for k in KEPT_HOST_ATTRS if k in row.template})
        HOSTS.update(session, ctx.principal, host_id, wire.HostUpdate(template=new))
    ctx.frontend.wake_monitor()
    return host_id


@method("one.host.rename", int, str, kind="action")
def host_rename(ctx: Ctx, host_id: int, name: str) -> int:
    """Rename a host."""
    with ctx.frontend.store.write() as session:
        row = HOSTS.load(session, ctx.principal, host_id, "MANAGE")
        HOSTS.rename(session, ctx.principal, row, _name(name))
    return host_id


@method("one.host.delete", int, kind="action")
def host_delete(ctx: Ctx, host_id: int) -> int:
    """Forget a host that runs no VMs."""
    with ctx.frontend.store.write() as session:
        HOSTS.delete(session, ctx.principal, host_id)
    ctx.frontend.wake_monitor()
    return host_id


@method("one.host.monitoring", int)
def host_monitoring(ctx: Ctx, host_id: int) -> str:
    """A host's monitoring samples (the retention window), oldest first."""
    with ctx.frontend.store.read() as session:
        HOSTS.load(session, ctx.principal, host_id)
        samples = session.scalars(
            select(HostSample).where(HostSample.host_id == host_id).order_by(HostSample.at)
        )
        return render.monitoring(samples)


@method("one.hostpool.info", int, int, int, defaults=(-2, -1, -1))
def hostpool_info(ctx: Ctx, flag: int, start: int, end: int) -> str:
    """The hosts the caller may see (OpenNebula takes no filter; ours are optional)."""
    stmt, wanted = _pool(Host, "HOST", ctx, flag, start, end, *render.HOST_COLUMNS)
    with ctx.frontend.store.read() as session:
        rows = session.execute(stmt).all()
        return render.document("HOST_POOL", render.hosts(session, rows, wanted))


@method("one.hostpool.monitoring", int, defaults=(0,))
def hostpool_monitoring(ctx: Ctx, seconds: int) -> str:
    """Samples of the visible hosts: 0 the latest of each, -1 all, N those of N seconds."""
    visible = select(Host.id).where(ctx.principal.visible("HOST"))
    with ctx.frontend.store.read() as session:
        if seconds == 0:
            latest = render.latest_samples(session, visible)
            samples: Sequence[Any] = [latest[k] for k in sorted(latest)]
        else:
            stmt = select(HostSample.__table__).where(HostSample.host_id.in_(visible))
            if seconds > 0:
                stmt = stmt.where(HostSample.at >= now() - seconds)
            samples = session.execute(stmt.order_by(HostSample.host_id, HostSample.at)).all()
        return render.monitoring(samples)


# --- clusters -------------------------------------------------------------------------


@method("one.cluster.allocate", str, kind="allocate")
def cluster_allocate(ctx: Ctx, name: str) -> int:
    """Create a cluster."""
    body = wire_body(wire.ClusterCreate, name=name)
    with ctx.frontend.store.write() as session:
        return CLUSTERS.create(session, ctx.principal, body).id


@method("one.cluster.info", int, bool, defaults=(False,))
def cluster_info(ctx: Ctx, cluster_id: int, decrypt: bool) -> str:
    """A cluster with its hosts, datastores and vnets."""
    with ctx.frontend.store.read() as session:
        row = CLUSTERS.load(session, ctx.principal, cluster_id)
        return render.clusters(session, [row], [row.id])[0]


@method("one.cluster.update", int, str, int, defaults=(0,), kind="action")
def cluster_update(ctx: Ctx, cluster_id: int, text: str, append: int) -> int:
    """Replace (0) or merge into (1) a cluster's template."""
    with ctx.frontend.store.write() as session:
        row = CLUSTERS.load(session, ctx.principal, cluster_id, "MANAGE")
        body = wire.ClusterUpdate(template=changed_template(row.template, text, append))
        CLUSTERS.update(session, ctx.principal, cluster_id, body)
    return cluster_id


@method("one.cluster.rename", int, str, kind="action")
def cluster_rename(ctx: Ctx, cluster_id: int, name: str) -> int:
    """Rename a cluster."""
    with ctx.frontend.store.write() as session:
        row = CLUSTERS.load(session, ctx.principal, cluster_id, "MANAGE")
        CLUSTERS.rename(session, ctx.principal, row, _name(name))
    return cluster_id


@method("one.cluster.delete", int, kind="action")
def cluster_delete(ctx: Ctx, cluster_id: int) -> int:
    """Delete a cluster without hosts (never the default cluster 0)."""
    with ctx.frontend.store.write() as session:
        CLUSTERS.delete(session, ctx.principal, cluster_id)
    return cluster_id


def _move_host(ctx: Ctx, cluster_id: int, host_id: int, *, leaving: bool) -> int:
    with ctx.frontend.store.write() as session:
        CLUSTERS.load(session, ctx.principal, cluster_id, "ADMIN")
        row = HOSTS.load(session, ctx.principal, host_id, "MANAGE")
        if leaving and row.cluster_id != cluster_id:
            raise InvalidInput("host_id", f"host {host_id} is not in cluster {cluster_id}")
        target = 0 if leaving else cluster_id
        HOSTS.update(session, ctx.principal, host_id, wire.HostUpdate(cluster_id=target))
    ctx.frontend.wake_monitor()
    return cluster_id


@method("one.cluster.addhost", int, int, kind="action")
def cluster_addhost(ctx: Ctx, cluster_id: int, host_id: int) -> int:
    """Move a host into the cluster."""
    return _move_host(ctx, cluster_id, host_id, leaving=False)


@method("one.cluster.delhost", int, int, kind="action")
def cluster_delhost(ctx: Ctx, cluster_id: int, host_id: int) -> int:
    """Move a host of the cluster back to the default cluster 0."""
    return _move_host(ctx, cluster_id, host_id, leaving=True)


def _link(ctx: Ctx, cluster_id: int, kind: str, obj_id: int, *, add: bool) -> int:
    with ctx.frontend.store.write() as session:
        if add:
            CLUSTERS.link(session, ctx.principal, cluster_id, kind, obj_id)
        else:
            CLUSTERS.unlink(session, ctx.principal, cluster_id, kind, obj_id)
    return cluster_id


@method("one.cluster.adddatastore", int, int, kind="action")
def cluster_adddatastore(ctx: Ctx, cluster_id: int, ds_id: int) -> int:
    """Make a datastore available in the cluster."""
    return _link(ctx, cluster_id, "DATASTORE", ds_id, add=True)


@method("one.cluster.deldatastore", int, int, kind="action")
def cluster_deldatastore(ctx: Ctx, cluster_id: int, ds_id: int) -> int:
    """Remove a datastore from the cluster."""
    return _link(ctx, cluster_id, "DATASTORE", ds_id, add=False)


@method("one.cluster.addvnet", int, int, kind="action")
def cluster_addvnet(ctx: Ctx, cluster_id: int, vnet_id: int) -> int:
    """Make a virtual network available in the cluster."""
    return _link(ctx, cluster_id, "NET", vnet_id, add=True)


@method("one.cluster.delvnet", int, int, kind="action")
def cluster_delvnet(ctx: Ctx, cluster_id: int, vnet_id: int) -> int:
    """Remove a virtual network from the cluster."""
    return _link(ctx, cluster_id, "NET", vnet_id, add=False)


@method("one.clusterpool.info", int, int, int, defaults=(-2, -1, -1))
def clusterpool_info(ctx: Ctx, flag: int, start: int, end: int) -> str:
    """The clusters the caller may see."""
    stmt, wanted = _pool(Cluster, "CLUSTER", ctx, flag, start, end)
    with ctx.frontend.store.read() as session:
        rows = session.execute(stmt).all()
        return render.document("CLUSTER_POOL", render.clusters(session, rows, wanted))


# --- datastores -----------------------------------------------------------------------


@method("one.datastore.allocate", str, int, defaults=(-1,), kind="allocate")
def datastore_allocate(ctx: Ctx, text: str, cluster_id: int) -> int:
    """Create a datastore from a template: NAME, TYPE (IMAGE_DS, SYSTEM_DS, FILE_DS), DS_MAD,
    TM_MAD; in the cluster given (-1: the default cluster 0)."""
    objects.require_create(ctx.principal, "DATASTORE")
    attrs = template_attrs(text)
    kind = attrs.get("TYPE", "IMAGE_DS")
    if not isinstance(kind, str) or kind.upper() not in render.DS_KINDS:
        raise InvalidInput("TYPE", f"{kind!r} is not IMAGE_DS, SYSTEM_DS or FILE_DS")
    body = wire_body(
        wire.DatastoreCreate,
        name=attrs.pop("NAME", ""),
        kind=render.DS_KINDS[kind.upper()],
        driver=render.mad(attrs, "DS_MAD", render.DS_MADS),
        transfer=render.mad(attrs, "TM_MAD", render.TM_MADS),
        cluster_ids=[_cluster(cluster_id)],
        template=attrs,
    )
    with ctx.frontend.store.write() as session:
        return DATASTORES.create(session, ctx.principal, body).id


@method("one.datastore.info", int, bool, defaults=(False,))
def datastore_info(ctx: Ctx, ds_id: int, decrypt: bool) -> str:
    """A datastore with its clusters and images."""
    with ctx.frontend.store.read() as session:
        row = DATASTORES.load(session, ctx.principal, ds_id)
        return render.datastores(session, ctx.frontend.settings.home, [row], [row.id])[0]


@method("one.datastore.update", int, str, int, defaults=(0,), kind="action")
def datastore_update(ctx: Ctx, ds_id: int, text: str, append: int) -> int:
    """Replace (0) or merge into (1) a datastore's template (its drivers cannot change)."""
    with ctx.frontend.store.write() as session:
        row = DATASTORES.load(session, ctx.principal, ds_id, "MANAGE")
        new = changed_template(row.template, text, append)
        for key, known, now_is in (
            ("DS_MAD", render.DS_MADS, row.driver),
            ("TM_MAD", render.TM_MADS, row.transfer),
        ):
            if key in new and render.mad(new, key, known) != now_is:
                raise InvalidInput(key, f"datastore {ds_id} keeps its {key}")
        DATASTORES.update(session, ctx.principal, ds_id, wire.DatastoreUpdate(template=new))
    return ds_id


@method("one.datastore.delete", int, kind="action")
def datastore_delete(ctx: Ctx, ds_id: int) -> int:
    """Delete a datastore that holds no images."""
    with ctx.frontend.store.write() as session:
        DATASTORES.delete(session, ctx.principal, ds_id)
    return ds_id


@method("one.datastore.chmod", int, *(int,) * 9, kind="action")
def datastore_chmod(ctx: Ctx, ds_id: int, *bits: int) -> int:
    """Set permission bits: owner, group, other x use, manage, admin (-1: unchanged)."""
    with ctx.frontend.store.write() as session:
        row = DATASTORES.load(session, ctx.principal, ds_id, "MANAGE")
        body = Chmod(permissions=chmod_bits(row.perms, bits))
        DATASTORES.chmod(session, ctx.principal, ds_id, body)
    return ds_id


@method("one.datastore.chown", int, int, int, kind="action")
def datastore_chown(ctx: Ctx, ds_id: int, user_id: int, group_id: int) -> int:
    """Change owner and/or group (-1: unchanged)."""
    body = Chown(
        owner_id=None if user_id < 0 else user_id, group_id=None if group_id < 0 else group_id
    )
    with ctx.frontend.store.write() as session:
        DATASTORES.chown(session, ctx.principal, ds_id, body)
    return ds_id


@method("one.datastore.rename", int, str, kind="action")
def datastore_rename(ctx: Ctx, ds_id: int, name: str) -> int:
    """Rename a datastore."""
    with ctx.frontend.store.write() as session:
        row = DATASTORES.load(session, ctx.principal, ds_id, "MANAGE")
        DATASTORES.rename(session, ctx.principal, row, _name(name))
    return ds_id


@method("one.datastore.enable", int, bool, kind="action")
def datastore_enable(ctx: Ctx, ds_id: int, enable: bool) -> int:
    """Datastores are always enabled here: enabling is a no-op, disabling is refused."""
    with ctx.frontend.store.read() as session:
        DATASTORES.load(session, ctx.principal, ds_id, "MANAGE")
    if not enable:
        raise InvalidInput("enable", "datastores cannot be disabled here")
    return ds_id


@method("one.datastorepool.info", int, int, int, defaults=(-2, -1, -1))
def datastorepool_info(ctx: Ctx, flag: int, start: int, end: int) -> str:
    """The datastores the caller may see."""
    stmt, wanted = _pool(Datastore, "DATASTORE", ctx, flag, start, end)
    with ctx.frontend.store.read() as session:
        rows = session.execute(stmt).all()
        home = ctx.frontend.settings.home
        return render.document("DATASTORE_POOL", render.datastores(session, home, rows, wanted))
