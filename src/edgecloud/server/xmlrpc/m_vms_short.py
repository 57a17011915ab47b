"""The short VM body of one.vmpool.info (vm_pool.xsd), rendered as text: the hot path.

Each VM is one precompiled text form filled from one row of SHORT_COLUMNS (owner, group
and host names joined in): what OpenNebula 6+ sends in its short body, CPU, MEMORY, the
disks' and NICs' main attributes, GRAPHICS, the scheduler's user attributes, the last
stay. A VM's text is kept per store until the row's version or the names change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import Text, cast

from edgecloud.server.db.engine import Store
from edgecloud.server.db.models import Group, Host, User, Vm
from edgecloud.server.xmlrpc.m_vms_render import TM_MAD, esc, num, xml_name

# OpenNebula's short DISK also has IMAGE and DATASTORE: see m_vms_render.SCHEMA_ELEMENTS.
DISK_SHORT = frozenset(
    (
        "DISK_ID",
        "DATASTORE_ID",
        "IMAGE_ID",
        "SIZE",
        "TYPE",
        "CLONE",
        "CLONE_TARGET",
        "LN_TARGET",
        "DISK_SNAPSHOT_TOTAL_SIZE",
    )
)
NIC_SHORT = frozenset(
    (
        "IP",
        "EXTERNAL_IP",
        "IP6",
        "IP6_ULA",
        "IP6_LINK",
        "IP6_GLOBAL",
        "NETWORK_MODE",
        "SCHED_REQUIREMENTS",
        "SCHED_RANK",
        "MAC",
        "NETWORK",
        "NETWORK_ID",
        "NIC_ID",
        "SECURITY_GROUPS",
    )
)
USER_SHORT = frozenset(
    (
        "LABELS",
        "ERROR",
        "SCHED_MESSAGE",
        "SCHED_RANK",
        "SCHED_DS_RANK",
        "SCHED_REQUIREMENTS",
        "SCHED_DS_REQUIREMENTS",
        "USER_PRIORITY",
        "PUBLIC_CLOUD",
    )
)
SHORT_COLUMNS = (
    Vm.id,
    Vm.version,
    Vm.owner_id,
    Vm.group_id,
    User.name,
    Group.name,
    Vm.name,
    Vm.state,
    Vm.lcm_state,
    Vm.resched,
    Vm.created_at,
    Vm.ended_at,
    Vm.deploy_id,
    Vm.cpu,
    Vm.memory_mb,
    cast(Vm.template, Text),
    cast(Vm.user_template, Text),
    Vm.error,
    Vm.host_id,
    Host.name,
    Vm.cluster_id,
    Vm.hypervisor,
)


def _vector(tag: str, attrs: dict[str, Any], keys: frozenset[str] | None, clean: bool) -> str:
    """A vector's text values as elements: those in `keys` (any XML name if None)."""
    if clean:
        inner = "".join(
            [
                f"<{k}>{v}</{k}>"
                for k, v in attrs.items()
                if type(v) is str and (k in keys if keys is not None else xml_name(k))
            ]
        )
    else:
        inner = "".join(
            [
                f"<{k}>{esc(v)}</{k}>"
                for k, v in attrs.items()
                if type(v) is str and (k in keys if keys is not None else xml_name(k))
            ]
        )
    return f"<{tag}>{inner}</{tag}>"


def _many(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def short_body(template: dict[str, Any], user: dict[str, Any], error: str, clean: bool) -> str:
    """The disks, NICs and GRAPHICS of TEMPLATE, and the short USER_TEMPLATE (`clean`: no
    template value needs escaping)."""
    out: list[str] = []
    for index, disk in enumerate(_many(template.get("DISK"))):
        if isinstance(disk, dict):
            if "DISK_ID" not in disk:
                disk = {"DISK_ID": str(index), **disk}
            out.append(_vector("DISK", disk, DISK_SHORT, clean))
    for nic in _many(template.get("NIC")):
        if isinstance(nic, dict):
            out.append(_vector("NIC", nic, NIC_SHORT, clean))
    graphics = template.get("GRAPHICS")
    if isinstance(graphics, dict):
        out.append(_vector("GRAPHICS", graphics, None, clean))
    if not user and not error and USER_SHORT.isdisjoint(template):
        out.append("</TEMPLATE><USER_TEMPLATE/>")
        return "".join(out)
    merged = {**template, **user}
    if error:
        merged["ERROR"] = error
    out.append("</TEMPLATE>")
    out.append(_vector("USER_TEMPLATE", merged, USER_SHORT, False))
    return "".join(out)


_EMPTY_BODY = "</TEMPLATE><USER_TEMPLATE/>"
_NO_HISTORY = "<HISTORY_RECORDS/>"
_BODY_KEYS = frozenset(("DISK", "NIC", "GRAPHICS", *USER_SHORT))


def _clean(text: str) -> bool:
    """Whether no value of a JSON text needs escaping (JSON writes control characters as
    \\u escapes)."""
    return "&" not in text and "<" not in text and ">" not in text and "\\u" not in text


# Each store's rendered VMs: id -> ((version, owner, group, host names), text). A VM row's
# version changes with any change of the row; the names live in other tables.
Cache = dict[int, tuple[tuple[Any, ...], str]]
_CACHES: WeakKeyDictionary[Store, Cache] = WeakKeyDictionary()
MAX_CACHED = 100_000


def render_short(rows: Iterable[Sequence[Any]], cache: Cache | None = None) -> str:
    """The VM_POOL document of one.vmpool.info, from SHORT_COLUMNS rows."""
    parts = ["<VM_POOL>"]
    append = parts.append
    loads = orjson.loads
    body_keys = _BODY_KEYS.isdisjoint
    cached = {} if cache is None else cache
    texts: dict[object, str] = {}  # escaped names and formatted CPUs seen so far
    for (
        vm_id,
        version,
        uid,
        gid,
        uname,
        gname,
        name,
        state,
        lcm,
        resched,
        stime,
        etime,
        deploy_id,
        cpu,
        memory,
        template_text,
        user_text,
        error,
        host_id,
        host_name,
        cluster_id,
        hypervisor,
    ) in rows:
        key = (version, uname, gname, host_name)
        hit = cached.get(vm_id)
        if hit is not None and hit[0] == key:
            append(hit[1])
            continue
        template = loads(template_text)
        user = loads(user_text) if user_text != "{}" else None
        if user or error or not body_keys(template):
            body = short_body(template, user or {}, error, _clean(template_text))
        else:
            body = _EMPTY_BODY
        if host_id is None:
            history = _NO_HISTORY
        else:
            hname = texts.get(host_name)
            if hname is None:
                hname = texts[host_name] = esc(host_name or "")
            history = (
                f"<HISTORY_RECORDS><HISTORY><OID>{vm_id}</OID><SEQ>0</SEQ>"
                f"<HOSTNAME>{hname}</HOSTNAME><HID>{host_id}</HID>"
                f"<CID>{-1 if cluster_id is None else cluster_id}</CID><DS_ID>0</DS_ID>"
                f"<VM_MAD>{hypervisor}</VM_MAD><TM_MAD>{TM_MAD}</TM_MAD>"
                "<ACTION>0</ACTION></HISTORY></HISTORY_RECORDS>"
            )
        owner = texts.get(uname)
        if owner is None:
            owner = texts[uname] = esc(uname)
        group = texts.get(gname)
        if group is None:
            group = texts[gname] = esc(gname)
        cpu_text = texts.get(cpu)
        if cpu_text is None:
            cpu_text = texts[cpu] = num(cpu)
        text = (
            f"<VM><ID>{vm_id}</ID><UID>{uid}</UID><GID>{gid}</GID><UNAME>{owner}</UNAME>"
            f"<GNAME>{group}</GNAME><NAME>{esc(name)}</NAME><LAST_POLL>0</LAST_POLL>"
            f"<STATE>{state}</STATE><LCM_STATE>{lcm}</LCM_STATE>"
            f"<RESCHED>{1 if resched else 0}</RESCHED><STIME>{stime}</STIME>"
            f"<ETIME>{etime or 0}</ETIME><DEPLOY_ID>{esc(deploy_id)}</DEPLOY_ID>"
            f"<TEMPLATE><CPU>{cpu_text}</CPU><MEMORY>{memory}</MEMORY>{body}{history}</VM>"
        )
        if cache is not None:
            if len(cache) >= MAX_CACHED:
                cache.clear()
            cache[vm_id] = (key, text)
        append(text)
    append("</VM_POOL>")
    return "".join(parts)


def cache_of(store: Store) -> Cache:
    """The rendered VMs of a store."""
    found = _CACHES.get(store)
    if found is None:
        found = _CACHES[store] = {}
    return found
