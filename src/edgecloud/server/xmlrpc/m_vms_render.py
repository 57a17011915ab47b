"""The VM document of one.vm.info and one.vmpool.infoextended (vm.xsd), built as text.

OpenNebula's VM TEMPLATE is a fixed sequence of known attributes (vm.xsd); every other
attribute of our template goes to USER_TEMPLATE with the user's own attributes, as
OpenNebula keeps them. History records are the VM's stays on hosts, read from our
history log: a stay begins where the log first shows a host and ends where it shows
another host or none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

_SPECIAL = re.compile(r"[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
# The global elements of OpenNebula's schemas (index.xsd). Where the XSDs leave content
# open (anyType: a DISK, CONTEXT, USER_TEMPLATE...), a child with one of these names is
# checked against that element (a DISK's IMAGE against the IMAGE document) and can never
# validate: such attributes are left out (a disk keeps IMAGE_ID and DATASTORE_ID).
SCHEMA_ELEMENTS = frozenset(
    {
        *("ACL_POOL", "BACKUPJOB", "BACKUPJOB_POOL", "CALL_INFO", "CLUSTER", "CLUSTER_POOL"),
        *("DATASTORE", "DATASTORE_POOL", "DOCUMENT", "DOCUMENT_POOL", "GROUP", "GROUP_POOL"),
        *("HISTORY", "HISTORY_RECORDS", "HOOK", "HOOK_MESSAGE", "HOOK_POOL", "HOST"),
        *("HOST_POOL", "IMAGE", "IMAGE_POOL", "MARKETPLACE", "MARKETPLACEAPP"),
        *("MARKETPLACEAPP_POOL", "MARKETPLACE_POOL", "MONITORING_DATA"),
        *("OPENNEBULA_CONFIGURATION", "RAFT", "SECURITY_GROUP", "SECURITY_GROUP_POOL"),
        *("SHOWBACK_RECORDS", "USER", "USER_POOL", "VDC", "VDC_POOL", "VM", "VMTEMPLATE"),
        *("VMTEMPLATE_POOL", "VM_GROUP", "VM_GROUP_POOL", "VM_POOL", "VNET", "VNET_POOL"),
        *("VNTEMPLATE", "VNTEMPLATE_POOL", "VROUTER", "VROUTER_POOL", "ZONE", "ZONE_POOL"),
    }
)
TM_MAD = "ssh"  # how our hosts get their disks: copied from the front-end
SYSTEM_DS = 0

# vm.xsd's TEMPLATE sequence: (name, shape). "s": one text value; "a": one value, text or
# a vector; "n": repeated, text or vectors; "v": repeated vectors. Attributes with a
# typed structure (VIDEO, SNAPSHOT, TPM, SCHED_ACTION, ...) stay in USER_TEMPLATE.
TEMPLATE_LAYOUT: tuple[tuple[str, str], ...] = (
    ("AUTOMATIC_DS_REQUIREMENTS", "s"),
    ("AUTOMATIC_NIC_REQUIREMENTS", "s"),
    ("AUTOMATIC_REQUIREMENTS", "s"),
    ("CLONING_TEMPLATE_ID", "s"),
    ("CONTEXT", "a"),
    ("CPU", "s"),
    ("CPU_COST", "s"),
    ("DISK", "n"),
    ("DISK_COST", "s"),
    ("EMULATOR", "s"),
    ("FEATURES", "a"),
    ("HYPERV_OPTIONS", "a"),
    ("GRAPHICS", "a"),
    ("IMPORTED", "s"),
    ("INPUT", "a"),
    ("MEMORY", "s"),
    ("MEMORY_COST", "s"),
    ("MEMORY_MAX", "s"),
    ("MEMORY_SLOTS", "s"),
    ("MEMORY_RESIZE_MODE", "s"),
    ("NIC", "v"),
    ("NIC_ALIAS", "v"),
    ("NIC_DEFAULT", "a"),
    ("NUMA_NODE", "a"),
    ("OS", "a"),
    ("PCI", "n"),
    ("RAW", "a"),
    ("SECURITY_GROUP_RULE", "n"),
    ("SPICE_OPTIONS", "a"),
    ("SUBMIT_ON_HOLD", "s"),
    ("TEMPLATE_ID", "s"),
    ("TM_MAD_SYSTEM", "s"),
    ("TOPOLOGY", "a"),
    ("VCPU", "s"),
    ("VCPU_MAX", "s"),
    ("VMGROUP", "a"),
    ("VMID", "s"),
    ("VROUTER_ID", "s"),
    ("VROUTER_KEEPALIVED_ID", "s"),
    ("VROUTER_KEEPALIVED_PASSWORD", "s"),
)
_SHAPE = dict(TEMPLATE_LAYOUT)
# Our history's actions as OpenNebula's HISTORY ACTION numbers (vm.xsd lists them).
ACTIONS = {
    "migrate": 1,
    "undeploy": 5,
    "hold": 7,
    "release": 8,
    "stop": 9,
    "suspend": 10,
    "resume": 11,
    "recreate": 14,
    "reboot": 15,
    "resched": 17,
    "unresched": 18,
    "poweroff": 19,
    "disk-attach": 21,
    "attach_disk": 21,
    "disk-detach": 22,
    "detach_disk": 22,
    "nic-attach": 23,
    "attach_nic": 23,
    "nic-detach": 24,
    "detach_nic": 24,
    "terminate": 27,
    "disk-resize": 29,
    "resize_disk": 29,
    "deploy": 30,
    "updateconf": 33,
    "resize": 35,
    "recover": 42,
}


_NAMES: dict[str, bool] = {}


def xml_name(key: str) -> bool:
    """Whether an attribute's name can be an element of open content (see SCHEMA_ELEMENTS)."""
    ok = _NAMES.get(key)
    if ok is None:
        ok = _NAMES[key] = XML_NAME.match(key) is not None and key not in SCHEMA_ELEMENTS
    return ok


def esc(value: str) -> str:
    """Text as XML character data (markup escaped, characters XML refuses dropped)."""
    if _SPECIAL.search(value) is None:
        return value
    return escape(_BAD.sub("", value))


def num(value: float) -> str:
    """A number as OpenNebula writes it: no exponent, no trailing zeros."""
    if float(value).is_integer():
        return str(int(value))
    return format(value, ".6f").rstrip("0").rstrip(".")


def scalar(value: object) -> str:
    """A template value as text."""
    if isinstance(value, str):
        return esc(value)
    if isinstance(value, bool):
        return "YES" if value else "NO"
    if isinstance(value, int | float):
        return num(value)
    return "" if value is None else esc(str(value))


def attribute(key: str, value: Any, out: list[str]) -> None:
    """Append an attribute: a value, a vector (mapping) or a repeated one (list)."""
    if not xml_name(key):
        return  # not an XML name (OpenNebula's keys always are), or a schema's element
    if isinstance(value, list):
        for item in value:
            attribute(key, item, out)
    elif isinstance(value, Mapping):
        out.append(f"<{key}>")
        for sub, item in value.items():
            attribute(str(sub), item, out)
        out.append(f"</{key}>")
    else:
        out.append(f"<{key}>{scalar(value)}</{key}>")


def attributes(attrs: Mapping[str, Any]) -> str:
    """Every attribute of a mapping, as elements."""
    out: list[str] = []
    for key, value in attrs.items():
        attribute(str(key), value, out)
    return "".join(out)


_PERMS: dict[int, str] = {}


def permissions(perms: int) -> str:
    """PERMISSIONS from the 9 bits."""
    found = _PERMS.get(perms)
    if found is None:
        inner = "".join(
            f"<{who}_{right}>{1 if perms >> shift & bit else 0}</{who}_{right}>"
            for who, shift in (("OWNER", 6), ("GROUP", 3), ("OTHER", 0))
            for right, bit in (("U", 4), ("M", 2), ("A", 1))
        )
        found = _PERMS[perms] = f"<PERMISSIONS>{inner}</PERMISSIONS>"
    return found


def _fits(shape: str, value: Any) -> bool:
    if shape == "s":
        return not isinstance(value, list | Mapping)
    if shape == "a":
        return not isinstance(value, list)
    items = value if isinstance(value, list) else [value]
    if shape == "v":
        return all(isinstance(i, Mapping) for i in items)
    return all(not isinstance(i, list) for i in items)


def stamped_disks(template: Mapping[str, Any]) -> list[Any]:
    """The template's DISKs, each with its DISK_ID (its position, unless it has one)."""
    raw = template.get("DISK") or []
    disks = raw if isinstance(raw, list) else [raw]
    out: list[Any] = []
    for index, disk in enumerate(disks):
        if isinstance(disk, Mapping) and "DISK_ID" not in disk:
            disk = {"DISK_ID": str(index), **disk}
        out.append(disk)
    return out


def split_template(row: Any) -> tuple[str, dict[str, Any]]:
    """The TEMPLATE element, and the attributes that belong in USER_TEMPLATE."""
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in row.template.items():
        if key == "NAME":
            continue  # the VM's name is NAME, not an attribute
        if key in _SHAPE and _fits(_SHAPE[key], value):
            known[key] = value
        else:
            extra[key] = value
    known.update(
        CPU=num(row.cpu),
        MEMORY=str(row.memory_mb),
        VCPU=str(row.vcpu),
        VMID=str(row.id),
        TM_MAD_SYSTEM=TM_MAD if row.host_id is not None else known.get("TM_MAD_SYSTEM", ""),
    )
    if "DISK" in known:
        known["DISK"] = stamped_disks(known)
    if row.template_id is not None:
        known["TEMPLATE_ID"] = str(row.template_id)
    out = ["<TEMPLATE>"]
    for key, _ in TEMPLATE_LAYOUT:
        if key in known:
            attribute(key, known[key], out)
    out.append("</TEMPLATE>")
    return "".join(out), extra


def user_template(row: Any, extra: Mapping[str, Any]) -> str:
    """USER_TEMPLATE: the template's other attributes, the user's, and the last ERROR."""
    attrs = {**extra, **row.user_template}
    if row.error:
        attrs["ERROR"] = row.error
    return f"<USER_TEMPLATE>{attributes(attrs)}</USER_TEMPLATE>"


@dataclass(frozen=True)
class LogEntry:
    """One record of our history log, with its host's name and cluster."""

    action: str
    user_id: int | None
    host_id: int | None
    state: int
    lcm_state: int
    at: int
    host_name: str | None
    cluster_id: int | None


@dataclass
class Stay:
    """A stay on a host: OpenNebula's HISTORY record."""

    seq: int
    host_id: int
    host_name: str
    cluster_id: int
    start: int
    end: int = 0
    action: int = 0
    user_id: int = -1


def action_number(name: str) -> int:
    """OpenNebula's ACTION number of one of our history actions (0 if none)."""
    word = name.removeprefix("vm.").split(" ", 1)[0]
    return ACTIONS.get(word, 0)


def stays(entries: Iterable[LogEntry]) -> list[Stay]:
    """The VM's stays on hosts, oldest first."""
    out: list[Stay] = []
    current: Stay | None = None
    for entry in entries:
        if current is not None and entry.host_id != current.host_id:
            current.end = entry.at
            _note(current, entry)
            current = None
        if current is None and entry.host_id is not None:
            name = entry.host_name or f"host-{entry.host_id}"
            cluster = entry.cluster_id if entry.cluster_id is not None else -1
            current = Stay(len(out), entry.host_id, name, cluster, entry.at)
            out.append(current)
        if current is not None:
            _note(current, entry)
    return out


def _note(stay: Stay, entry: LogEntry) -> None:
    number = action_number(entry.action)
    if number and not (number == ACTIONS["deploy"] and stay.action):
        stay.action = number
        stay.user_id = entry.user_id if entry.user_id is not None else -1


def history_records(vm_id: int, hypervisor: str, found: list[Stay]) -> str:
    """HISTORY_RECORDS of the full document."""
    if not found:
        return "<HISTORY_RECORDS/>"
    out = ["<HISTORY_RECORDS>"]
    for s in found:
        times = (
            f"<PSTIME>{s.start}</PSTIME><PETIME>{s.start}</PETIME>"
            f"<RSTIME>{s.start}</RSTIME><RETIME>{s.end}</RETIME>"
            f"<ESTIME>{s.end}</ESTIME><EETIME>{s.end}</EETIME>"
        )
        out.append(
            f"<HISTORY><OID>{vm_id}</OID><SEQ>{s.seq}</SEQ><HOSTNAME>{esc(s.host_name)}</HOSTNAME>"
            f"<HID>{s.host_id}</HID><CID>{s.cluster_id}</CID><STIME>{s.start}</STIME>"
            f"<ETIME>{s.end}</ETIME><VM_MAD>{esc(hypervisor)}</VM_MAD><TM_MAD>{TM_MAD}</TM_MAD>"
            f"<DS_ID>{SYSTEM_DS}</DS_ID><PLAN_ID>-1</PLAN_ID><ACTION_ID>-1</ACTION_ID>{times}"
            f"<ACTION>{s.action}</ACTION><UID>{s.user_id}</UID><GID>-1</GID>"
            "<REQUEST_ID>-1</REQUEST_ID></HISTORY>"
        )
    out.append("</HISTORY_RECORDS>")
    return "".join(out)


@dataclass(frozen=True)
class Sample:
    """A monitoring sample: CPUs used, memory in MiB, network bytes, when."""

    at: int
    cpu: float
    memory_mb: int
    net_rx: int
    net_tx: int


def monitoring_body(vm_id: int, sample: Sample) -> str:
    """The children of a MONITORING element (CPU in percent of one CPU, MEMORY in KiB)."""
    return (
        f"<CPU>{num(sample.cpu * 100)}</CPU><ID>{vm_id}</ID>"
        f"<MEMORY>{sample.memory_mb * 1024}</MEMORY><NETRX>{sample.net_rx}</NETRX>"
        f"<NETTX>{sample.net_tx}</NETTX><TIMESTAMP>{sample.at}</TIMESTAMP>"
    )


@dataclass(frozen=True)
class Extras:
    """What a full VM document needs beyond the VM's row."""

    uname: str
    gname: str
    entries: list[LogEntry]
    sample: Sample | None


def vm_document(row: Any, extras: Extras) -> str:
    """The full <VM> document (one.vm.info; each VM of one.vmpool.infoextended)."""
    entries = extras.entries
    prev = (row.state, row.lcm_state)
    changes = [(e.state, e.lcm_state) for e in entries]
    for earlier in reversed(changes[:-1]):
        if earlier != prev:
            prev = earlier
            break
    sample = extras.sample
    monitoring = monitoring_body(row.id, sample) if sample else ""
    template, extra = split_template(row)
    return "".join(
        (
            f"<VM><ID>{row.id}</ID><UID>{row.owner_id}</UID><GID>{row.group_id}</GID>",
            f"<UNAME>{esc(extras.uname)}</UNAME><GNAME>{esc(extras.gname)}</GNAME>",
            f"<NAME>{esc(row.name)}</NAME>{permissions(row.perms)}",
            f"<LAST_POLL>{sample.at if sample else 0}</LAST_POLL>",
            f"<STATE>{row.state}</STATE><LCM_STATE>{row.lcm_state}</LCM_STATE>",
            f"<PREV_STATE>{prev[0]}</PREV_STATE><PREV_LCM_STATE>{prev[1]}</PREV_LCM_STATE>",
            f"<RESCHED>{1 if row.resched else 0}</RESCHED><STIME>{row.created_at}</STIME>",
            f"<ETIME>{row.ended_at or 0}</ETIME><DEPLOY_ID>{esc(row.deploy_id)}</DEPLOY_ID>",
            f"<MONITORING>{monitoring}</MONITORING><SCHED_ACTIONS/>",
            template,
            user_template(row, extra),
            history_records(row.id, row.hypervisor, stays(entries)),
            "<BACKUPS><BACKUP_CONFIG/><BACKUP_IDS/></BACKUPS></VM>",
        )
    )
