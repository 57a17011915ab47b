"""USER, GROUP, ACL_POOL, ZONE and OPENNEBULA_CONFIGURATION documents, and the hex form of
ACL rules that OpenNebula's one.acl.* methods speak.

A rule travels as three or four 64-bit numbers written in hexadecimal: USER and the
resource's WHICH part are an id (low 32 bits) with a kind bit (0x1_0000_0000 an id,
0x2_0000_0000 a group, 0x4_0000_0000 all, 0x8_0000_0000 a cluster), RESOURCE adds one
bit per resource type, RIGHTS one bit per right, ZONE is an id or all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from edgecloud.api import identity as wire
from edgecloud.server.auth.acl_syntax import AclRule
from edgecloud.server.config import Settings
from edgecloud.server.db.models import User
from edgecloud.server.errors import InvalidInput
from edgecloud.server.xmlrpc.xml import Element, el, fields, ids, template

INDIVIDUAL, GROUP, ALL, CLUSTER = 0x1_0000_0000, 0x2_0000_0000, 0x4_0000_0000, 0x8_0000_0000
ID_MASK, KIND_MASK = 0xFFFF_FFFF, 0xF_0000_0000
RESOURCE_BITS: dict[str, int] = {
    "VM": 0x1000000000,
    "HOST": 0x2000000000,
    "NET": 0x4000000000,
    "IMAGE": 0x8000000000,
    "USER": 0x10000000000,
    "TEMPLATE": 0x20000000000,
    "GROUP": 0x40000000000,
    "DATASTORE": 0x100000000000,
    "CLUSTER": 0x200000000000,
    "DOCUMENT": 0x400000000000,
    "ZONE": 0x800000000000,
    "SECGROUP": 0x1000000000000,
    "VDC": 0x2000000000000,
    "VROUTER": 0x4000000000000,
    "MARKETPLACE": 0x8000000000000,
    "MARKETPLACEAPP": 0x10000000000000,
    "VMGROUP": 0x20000000000000,
    "VNTEMPLATE": 0x40000000000000,
    "BACKUPJOB": 0x100000000000000,
}
RIGHT_BITS: dict[str, int] = {"USE": 0x1, "MANAGE": 0x2, "ADMIN": 0x4, "CREATE": 0x8}
_PREFIX = {INDIVIDUAL: "#", GROUP: "@", CLUSTER: "%"}
_KIND_BIT = {"user": INDIVIDUAL, "id": INDIVIDUAL, "group": GROUP, "cluster": CLUSTER}
# The hypervisors hosts may run, as OpenNebula's VM_MAD / IM_MAD names.
MADS = ("kvm", "lxc", "microvm", "dummy")


# --- ACL rules: hex <-> our rule syntax ---------------------------------------------


def _number(text: str, part: str) -> int:
    digits = text.strip().lower().removeprefix("0x")
    try:
        value = int(digits, 16)
    except ValueError:
        raise InvalidInput("rule", f"{part} {text!r} is not a hexadecimal number") from None
    if not 0 <= value < 2**64:
        raise InvalidInput("rule", f"{part} {text!r} is out of range")
    return value


def _spec(value: int, part: str, kinds: Iterable[int]) -> str:
    kind, ident = value & KIND_MASK, value & ID_MASK
    if kind == ALL and ALL in kinds:
        return "*"
    if kind in kinds and kind != ALL:
        return f"{_PREFIX[kind]}{ident}"
    raise InvalidInput("rule", f"{part} {value:#x} names no user, group, cluster or 'all'")


def rule_text(user: str, resource: str, rights: str, zone: str = "") -> str:
    """Our rule syntax ('#5 VM+NET/@102 USE #0') for OpenNebula's hex rule parts."""
    user_n, resource_n, rights_n = (
        _number(user, "user"),
        _number(resource, "resource"),
        _number(rights, "rights"),
    )
    if user_n > KIND_MASK | ID_MASK:
        raise InvalidInput("rule", f"user {user!r} has resource bits")
    who = _spec(user_n, "user", (INDIVIDUAL, GROUP, ALL))
    type_bits = resource_n & ~(KIND_MASK | ID_MASK)
    types = [name for name, bit in RESOURCE_BITS.items() if type_bits & bit]
    if not types or sum(RESOURCE_BITS[t] for t in types) != type_bits:
        raise InvalidInput("rule", f"resource {resource!r} names no or unknown resource types")
    which = _spec(resource_n & (KIND_MASK | ID_MASK), "resource", (INDIVIDUAL, GROUP, ALL, CLUSTER))
    granted = [name for name, bit in RIGHT_BITS.items() if rights_n & bit]
    if not granted or rights_n & ~0xF:
        raise InvalidInput("rule", f"rights {rights!r} must be a sum of 0x1, 0x2, 0x4, 0x8")
    text = f"{who} {'+'.join(types)}/{which} {'+'.join(granted)}"
    if zone.strip():
        text += " " + _spec(_number(zone, "zone"), "zone", (INDIVIDUAL, ALL))
    return text


def _bits(kind: str, ident: int | None) -> int:
    return ALL if ident is None else _KIND_BIT[kind] | ident


def _string(rule: AclRule) -> str:
    """OpenNebula's STRING of a rule: types in bit order, the zone always written."""

    def spec(kind: str, ident: int | None) -> str:
        return "*" if ident is None else f"{_PREFIX[_KIND_BIT[kind]]}{ident}"

    types = "+".join(t for t in RESOURCE_BITS if t in rule.resource_types)
    rights = "+".join(r for r in RIGHT_BITS if r in rule.rights)
    zone = "*" if rule.zone is None else f"#{rule.zone}"
    which = spec(rule.resource_kind, rule.resource_id)
    return f"{spec(rule.user_kind, rule.user_id)} {types}/{which} {rights} {zone}"


def acl_pool(rules: Iterable[tuple[int, AclRule]]) -> Element:
    """ACL_POOL: each rule's numbers in hex (no 0x, as OpenNebula writes them) and STRING."""
    root = el("ACL_POOL")
    for acl_id, rule in rules:
        resource = _bits(rule.resource_kind, rule.resource_id)
        resource += sum(RESOURCE_BITS[t] for t in rule.resource_types if t in RESOURCE_BITS)
        numbers = [
            ("USER", _bits(rule.user_kind, rule.user_id)),
            ("RESOURCE", resource),
            ("RIGHTS", sum(RIGHT_BITS[r] for r in rule.rights)),
            ("ZONE", ALL if rule.zone is None else INDIVIDUAL | rule.zone),
        ]
        node = fields(el("ACL"), [("ID", acl_id), *((tag, f"{n:x}") for tag, n in numbers)])
        root.append(fields(node, [("STRING", _string(rule))]))
    return root


# --- users and groups -----------------------------------------------------------------


def user(
    item: wire.User, group_name: str, *, full: bool = True, quota: Element | None = None
) -> Element:
    """USER (`full`: as one.user.info answers, with the default quotas element)."""
    groups = item.group_ids or [item.group_id]
    node = fields(el("USER"), [("ID", item.id), ("GID", item.group_id)])
    node.append(ids("GROUPS", groups))
    fields(
        node,
        [
            ("GNAME", group_name),
            ("NAME", item.name),
            ("PASSWORD", ""),  # never the hash
            ("AUTH_DRIVER", "core"),
            ("ENABLED", 1 if item.enabled else 0),
        ],
    )
    node.append(template("TEMPLATE", item.template))
    if quota is not None:
        node.append(quota)
    if full:
        node.append(el("DEFAULT_USER_QUOTAS"))
    return node


def user_wire(row: User, group_ids: list[int]) -> wire.User:
    """A user row as the wire type (its memberships given)."""
    return wire.User(
        id=row.id,
        name=row.name,
        group_id=row.group_id,
        group_ids=group_ids,
        enabled=row.enabled,
        version=row.version,
        created_at=row.created_at,
        template=row.template,
    )


def user_pool(items: Iterable[Element]) -> Element:
    """USER_POOL: the users, then the (empty) default quotas."""
    root = el("USER_POOL")
    root.extend(items)
    root.append(el("DEFAULT_USER_QUOTAS"))
    return root


def group(item: wire.Group, *, full: bool = True, quota: Element | None = None) -> Element:
    """GROUP (`full`: as one.group.info answers). Groups have no admins here."""
    node = fields(el("GROUP"), [("ID", item.id), ("NAME", item.name)])
    node.extend(
        [template("TEMPLATE", item.template), ids("USERS", item.user_ids), ids("ADMINS", [])]
    )
    if full:
        if quota is not None:
            node.append(quota)
        node.append(fields(el("VLAN_RULES"), [("ID", item.id)]))
        node.append(el("DEFAULT_GROUP_QUOTAS"))
    return node


def group_pool(items: Iterable[Element]) -> Element:
    """GROUP_POOL: the groups, then the (empty) default quotas."""
    root = el("GROUP_POOL")
    root.extend(items)
    root.append(el("DEFAULT_GROUP_QUOTAS"))
    return root


def vm_quota(quota: wire.Quota) -> Element | None:
    """VM_QUOTA of a user or group that has limits (OpenNebula: -2 unlimited)."""
    limits, usage = quota.limits, quota.usage
    if all(v is None for v in limits.model_dump().values()):
        return None

    def limit(value: float | None) -> str:
        return "-2" if value is None else f"{value:g}"

    cpu, mem = limit(limits.cpu), limit(limits.memory_mb)
    pairs: Sequence[tuple[str, object]] = [
        ("CPU", cpu),
        ("CPU_USED", f"{usage.cpu:g}"),
        ("MEMORY", mem),
        ("MEMORY_USED", usage.memory_mb),
        ("PCI_DEV", "-2"),
        ("PCI_DEV_USED", 0),
        ("PCI_NIC", "-2"),
        ("PCI_NIC_USED", 0),
        ("RUNNING_CPU", "-2"),
        ("RUNNING_CPU_USED", 0),
        ("RUNNING_MEMORY", "-2"),
        ("RUNNING_MEMORY_USED", 0),
        ("RUNNING_PCI_DEV", "-2"),
        ("RUNNING_PCI_DEV_USED", 0),
        ("RUNNING_PCI_NIC", "-2"),
        ("RUNNING_PCI_NIC_USED", 0),
        ("RUNNING_VMS", "-2"),
        ("RUNNING_VMS_USED", 0),
        ("SYSTEM_DISK_SIZE", limit(limits.system_disk_mb)),
        ("SYSTEM_DISK_SIZE_USED", usage.system_disk_mb),
        ("VMS", limit(limits.vms)),
        ("VMS_USED", usage.vms),
    ]
    return el("VM_QUOTA", None, fields(el("VM"), pairs))


# --- zone and configuration -----------------------------------------------------------


def endpoint(settings: Settings) -> str:
    """The XML-RPC URL of this front-end (the dedicated listener when there is one)."""
    return f"http://{settings.xmlrpc_bind or settings.bind}/RPC2"


def zone(settings: Settings) -> Element:
    """The one zone, 0: this front-end."""
    node = fields(el("ZONE"), [("ID", 0), ("NAME", "OpenNebula"), ("STATE", 0)])
    node.append(fields(el("TEMPLATE"), [("ENDPOINT", endpoint(settings))]))
    node.append(el("SERVER_POOL"))
    return node


def configuration(settings: Settings, dialect: str) -> Element:
    """A minimal OPENNEBULA_CONFIGURATION (elements in the schema's order)."""
    root = el("OPENNEBULA_CONFIGURATION")
    root.append(
        fields(
            el("AUTH_MAD_CONF"),
            [
                ("DRIVER_MANAGED_GROUPS", "NO"),
                ("DRIVER_MANAGED_GROUP_ADMIN", "NO"),
                ("MAX_TOKEN_TIME", MAX_TOKEN_SECONDS),
                ("NAME", "core"),
                ("PASSWORD_CHANGE", "YES"),
            ],
        )
    )
    if dialect == "sqlite":
        root.append(fields(el("DB"), [("BACKEND", "sqlite")]))
    fields(root, [("DEFAULT_AUTH", "core"), ("DEFAULT_UMASK", "177")])
    root.append(
        fields(el("FEDERATION"), [("MODE", "STANDALONE"), ("SERVER_ID", -1), ("ZONE_ID", 0)])
    )
    for mad in MADS:
        root.append(fields(el("IM_MAD"), [("NAME", mad)]))
    host, _, port = (settings.xmlrpc_bind or settings.bind).rpartition(":")
    fields(
        root,
        [
            ("LISTEN_ADDRESS", host.strip("[]") or "127.0.0.1"),
            ("MONITORING_INTERVAL_HOST", max(1, round(settings.monitor_interval))),
            ("PORT", int(port) if port.isdigit() else 0),
            ("SESSION_EXPIRATION_TIME", settings.token_ttl_seconds),
        ],
    )
    for mad in MADS:
        root.append(fields(el("VM_MAD"), [("NAME", mad), ("TYPE", _VM_TYPE[mad])]))
    return root


MAX_TOKEN_SECONDS = 30 * 24 * 3600
_VM_TYPE: Mapping[str, str] = {"kvm": "kvm", "lxc": "xml", "microvm": "xml", "dummy": "xml"}
