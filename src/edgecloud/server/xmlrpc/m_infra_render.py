"""HOST, CLUSTER, DATASTORE and MONITORING_DATA documents (each pool in a few queries), and
OpenNebula's names of our datastore drivers.

Every builder takes the ids to render as a list or as a SELECT of ids (a pool's filtered
query), so a pool of any size costs one query per related table, never one per object.
Documents are written as text directly (ElementTree's building and serialising cost 4/5 of
a 5,000-host pool), with the same rules as `xml.py`: values cleaned of characters XML
cannot carry, attributes that are not XML names left out.
Units are OpenNebula's: CPU in percent (100 per core), memory in KiB, disk in MiB.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from edgecloud.server.db.models import (
    Cluster,
    ClusterDatastore,
    ClusterVnet,
    Group,
    Host,
    HostSample,
    Image,
    User,
    Vm,
    now,
)
from edgecloud.server.errors import InvalidInput
from edgecloud.server.xmlrpc.xml import text

DONE = 6
DS_TYPE = {"image": 0, "system": 1, "file": 2}
SAMPLE_WINDOW = 600  # seconds: an older sample is no longer the host's current figure
Ids = Sequence[int] | Select[Any]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
HOST_COLUMNS = (
    Host.id,
    Host.name,
    Host.state,
    Host.cluster_id,
    Host.hypervisor,
    Host.template,
    Host.used_cpu,
    Host.used_memory_mb,
    Host.total_cpu,
    Host.total_memory_mb,
    Host.running_vms,
    Host.free_disk_mb,
)


# The drivers of datastores by OpenNebula's names.
DS_KINDS = {"IMAGE_DS": "image", "SYSTEM_DS": "system", "FILE_DS": "file"}
DS_MADS = {"": "fs", "fs": "fs", "dummy": "fs"}
TM_MADS = {
    "": "ssh",
    "ssh": "ssh",
    "shared": "shared",
    "local": "local",
    "qcow2": "shared",
    "dummy": "local",
}


def mad(attrs: dict[str, Any], key: str, known: dict[str, str]) -> str:
    """Our driver or transfer for a template's DS_MAD or TM_MAD (refused if unknown)."""
    value = attrs.get(key, "")
    if not isinstance(value, str) or value.lower() not in known:
        names = ", ".join(k for k in known if k)
        raise InvalidInput(key, f"{value!r} is not supported; use one of {names}")
    return known[value.lower()]


# --- writing --------------------------------------------------------------------------


def _e(tag: str, value: object) -> str:
    if type(value) is int:
        return f"<{tag}>{value}</{tag}>"
    return f"<{tag}>{escape(text(value))}</{tag}>"


def _all(pairs: Iterable[tuple[str, object]]) -> str:
    return "".join(_e(tag, value) for tag, value in pairs)


def _ids(tag: str, values: Iterable[int]) -> str:
    return f"<{tag}>{''.join(f'<ID>{v}</ID>' for v in values)}</{tag}>"


def _template(tag: str, attrs: Mapping[str, Any]) -> str:
    return f"<{tag}>{''.join(_attribute(str(k), v) for k, v in attrs.items())}</{tag}>"


def _attribute(key: str, value: Any) -> str:
    if not _NAME.match(key):
        return ""  # not an XML name: OpenNebula's keys always are
    if isinstance(value, list):
        return "".join(_attribute(key, item) for item in value)
    if isinstance(value, Mapping):
        return _template(key, value)
    return _e(key, value)


def _permissions(perms: int) -> str:
    bits = [
        (f"{who}_{right}", 1 if perms >> shift & bit else 0)
        for who, shift in (("OWNER", 6), ("GROUP", 3), ("OTHER", 0))
        for right, bit in (("U", 4), ("M", 2), ("A", 1))
    ]
    return f"<PERMISSIONS>{_all(bits)}</PERMISSIONS>"


def document(tag: str, items: Iterable[str]) -> str:
    """A pool document: the root with its items."""
    return f"<{tag}>{''.join(items)}</{tag}>"


def vm_mad(hypervisor: str) -> str:
    """OpenNebula's VM_MAD of one of our hypervisors (the fake one is `dummy`)."""
    return "dummy" if hypervisor == "fake" else hypervisor


def _grouped(rows: Iterable[Any]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    for key, value in rows:
        out[key].append(value)
    return out


def _cpu(cores: float) -> int:
    return round(cores * 100)


# --- hosts ----------------------------------------------------------------------------


def hosts(session: Session, rows: Sequence[Any], wanted: Ids) -> list[str]:
    """HOST documents of `rows` (Host rows or objects; `wanted`: their ids, or the query
    that selected them)."""
    if not rows:
        return []
    clusters = {
        c.id: c
        for c in session.execute(
            select(Cluster.id, Cluster.name, Cluster.reserved_cpu, Cluster.reserved_memory_mb)
        )
    }
    vms = _grouped(
        session.execute(
            select(Vm.host_id, Vm.id)
            .where(Vm.host_id.in_(wanted), Vm.state != DONE)
            .order_by(Vm.id)
        )
    )
    samples = latest_samples(session, wanted)
    return [
        _host(r, clusters.get(r.cluster_id), vms.get(r.id, ()), samples.get(r.id)) for r in rows
    ]


def latest_samples(session: Session, wanted: Ids) -> dict[int, Any]:
    """The newest sample (host_id, at, used_cpu, used_memory_mb) of each host, of the last
    SAMPLE_WINDOW seconds."""
    newest = (
        select(func.max(HostSample.id))
        .where(HostSample.host_id.in_(wanted), HostSample.at >= now() - SAMPLE_WINDOW)
        .group_by(HostSample.host_id)
    )
    columns = (HostSample.host_id, HostSample.at, HostSample.used_cpu, HostSample.used_memory_mb)
    stmt = select(*columns).where(HostSample.id.in_(newest))
    return {s.host_id: s for s in session.execute(stmt)}


def _s(value: object) -> str:
    return escape(text(value))


def _host(row: Any, cluster: Any, vm_ids: Iterable[int], sample: Any) -> str:
    reserved_cpu = cluster.reserved_cpu if cluster else 0.0
    reserved_mb = cluster.reserved_memory_mb if cluster else 0
    im_mad = row.template.get("IM_MAD")
    mem, disk = row.total_memory_mb, row.free_disk_mb
    return (
        f"<HOST><ID>{row.id}</ID><NAME>{_s(row.name)}</NAME>"
        f"<STATE>{row.state}</STATE><PREV_STATE>{row.state}</PREV_STATE>"
        f"<IM_MAD>{_s(im_mad if isinstance(im_mad, str) else vm_mad(row.hypervisor))}</IM_MAD>"
        f"<VM_MAD>{_s(vm_mad(row.hypervisor))}</VM_MAD>"
        f"<CLUSTER_ID>{row.cluster_id}</CLUSTER_ID><CLUSTER>{_s(cluster.name if cluster else '')}"
        "</CLUSTER><HOST_SHARE>"
        f"<MEM_USAGE>{row.used_memory_mb * 1024}</MEM_USAGE>"
        f"<CPU_USAGE>{_cpu(row.used_cpu)}</CPU_USAGE>"
        f"<TOTAL_MEM>{max(0, mem - reserved_mb) * 1024}</TOTAL_MEM>"
        f"<TOTAL_CPU>{max(0, _cpu(row.total_cpu - reserved_cpu))}</TOTAL_CPU>"
        f"<MAX_MEM>{mem * 1024}</MAX_MEM><MAX_CPU>{_cpu(row.total_cpu)}</MAX_CPU>"
        f"<RUNNING_VMS>{row.running_vms}</RUNNING_VMS><VMS_THREAD>1</VMS_THREAD>"
        f"<DATASTORES><DISK_USAGE>0</DISK_USAGE><FREE_DISK>{disk}</FREE_DISK>"
        f"<MAX_DISK>{disk}</MAX_DISK><USED_DISK>0</USED_DISK></DATASTORES>"
        "<PCI_DEVICES></PCI_DEVICES><NUMA_NODES></NUMA_NODES></HOST_SHARE>"
        f"{_ids('VMS', vm_ids)}{_template('TEMPLATE', row.template)}"
        f"{_host_monitoring(row, sample)}</HOST>"
    )


def _host_monitoring(row: Any, sample: Any) -> str:
    if sample is None:
        return "<MONITORING></MONITORING>"
    used_kib = sample.used_memory_mb * 1024
    return (
        f"<MONITORING><TIMESTAMP>{sample.at}</TIMESTAMP><ID>{row.id}</ID><CAPACITY>"
        f"<FREE_CPU>{max(0, _cpu(row.total_cpu - sample.used_cpu))}</FREE_CPU>"
        f"<FREE_MEMORY>{max(0, row.total_memory_mb * 1024 - used_kib)}</FREE_MEMORY>"
        f"<USED_CPU>{_cpu(sample.used_cpu)}</USED_CPU><USED_MEMORY>{used_kib}</USED_MEMORY>"
        "</CAPACITY></MONITORING>"
    )


def monitoring(samples: Iterable[Any]) -> str:
    """MONITORING_DATA: one MONITORING per sample (CPU in percent, MEMORY in KiB)."""
    return document(
        "MONITORING_DATA",
        (
            f"<MONITORING><CPU>{_cpu(s.used_cpu)}</CPU><ID>{s.host_id}</ID>"
            f"<MEMORY>{s.used_memory_mb * 1024}</MEMORY><TIMESTAMP>{s.at}</TIMESTAMP></MONITORING>"
            for s in samples
        ),
    )


# --- clusters -------------------------------------------------------------------------


def clusters(session: Session, rows: Sequence[Any], wanted: Ids) -> list[str]:
    """CLUSTER documents with the ids of their hosts, datastores and vnets."""
    if not rows:
        return []
    host_ids = _grouped(
        session.execute(
            select(Host.cluster_id, Host.id).where(Host.cluster_id.in_(wanted)).order_by(Host.id)
        )
    )
    ds_ids = _grouped(
        session.execute(
            select(ClusterDatastore.cluster_id, ClusterDatastore.datastore_id)
            .where(ClusterDatastore.cluster_id.in_(wanted))
            .order_by(ClusterDatastore.datastore_id)
        )
    )
    vnet_ids = _grouped(
        session.execute(
            select(ClusterVnet.cluster_id, ClusterVnet.vnet_id)
            .where(ClusterVnet.cluster_id.in_(wanted))
            .order_by(ClusterVnet.vnet_id)
        )
    )
    return [
        f"<CLUSTER>{_all([('ID', row.id), ('NAME', row.name)])}"
        f"{_ids('HOSTS', host_ids.get(row.id, []))}"
        f"{_ids('DATASTORES', ds_ids.get(row.id, []))}"
        f"{_ids('VNETS', vnet_ids.get(row.id, []))}"
        f"{_template('TEMPLATE', row.template)}</CLUSTER>"
        for row in rows
    ]


# --- datastores -----------------------------------------------------------------------


def names(
    session: Session, user_ids: Iterable[int], group_ids: Iterable[int]
) -> tuple[dict[int, str], dict[int, str]]:
    """User names and group names by id (for UNAME and GNAME)."""
    users = select(User.id, User.name).where(User.id.in_(set(user_ids)))
    groups = select(Group.id, Group.name).where(Group.id.in_(set(group_ids)))
    return _pairs(session, users), _pairs(session, groups)


def _pairs(session: Session, stmt: Any) -> dict[int, str]:
    return {key: value for key, value in session.execute(stmt)}


def datastores(session: Session, home: Path, rows: Sequence[Any], wanted: Ids) -> list[str]:
    """DATASTORE documents with their clusters and images."""
    if not rows:
        return []
    unames, gnames = names(session, (r.owner_id for r in rows), (r.group_id for r in rows))
    cluster_ids = _grouped(
        session.execute(
            select(ClusterDatastore.datastore_id, ClusterDatastore.cluster_id)
            .where(ClusterDatastore.datastore_id.in_(wanted))
            .order_by(ClusterDatastore.cluster_id)
        )
    )
    image_ids = _grouped(
        session.execute(
            select(Image.datastore_id, Image.id)
            .where(Image.datastore_id.in_(wanted))
            .order_by(Image.id)
        )
    )
    return [
        _datastore(
            row, home, unames, gnames, cluster_ids.get(row.id, []), image_ids.get(row.id, [])
        )
        for row in rows
    ]


def _datastore(
    row: Any,
    home: Path,
    unames: dict[int, str],
    gnames: dict[int, str],
    cluster_ids: list[int],
    image_ids: list[int],
) -> str:
    attrs = row.template
    owner = _all(
        [
            ("ID", row.id),
            ("UID", row.owner_id),
            ("GID", row.group_id),
            ("UNAME", unames.get(row.owner_id, "")),
            ("GNAME", gnames.get(row.group_id, "")),
            ("NAME", row.name),
        ]
    )
    drivers = _all(
        [
            ("DS_MAD", attrs.get("DS_MAD") or ("-" if row.kind == "system" else row.driver)),
            ("TM_MAD", attrs.get("TM_MAD") or row.transfer),
            ("BASE_PATH", attrs.get("BASE_PATH") or str(home / "datastores" / str(row.id))),
            ("TYPE", DS_TYPE.get(row.kind, 0)),
            ("DISK_TYPE", 0),
            ("STATE", 0),
        ]
    )
    sizes = _all(
        [
            ("TOTAL_MB", row.total_mb),
            ("FREE_MB", row.free_mb),
            ("USED_MB", max(0, row.total_mb - row.free_mb)),
        ]
    )
    return (
        f"<DATASTORE>{owner}{_permissions(row.perms)}{drivers}{_ids('CLUSTERS', cluster_ids)}"
        f"{sizes}{_ids('IMAGES', image_ids)}{_template('TEMPLATE', attrs)}</DATASTORE>"
    )
