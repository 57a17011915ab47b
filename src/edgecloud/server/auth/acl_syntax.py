"""Parse and format OpenNebula ACL rule strings such as ``#5 VM+NET/@102 USE+MANAGE``.

A rule is ``USER RESOURCES/WHICH RIGHTS [ZONE]``:

- USER: ``#uid``, ``@gid`` or ``*``;
- RESOURCES: types joined by ``+`` (RESOURCE_TYPES), then ``/`` and WHICH:
  ``#id``, ``@gid`` (owned by the group), ``%cluster_id`` or ``*``;
- RIGHTS: joined by ``+`` (RIGHTS);
- ZONE: ``#zone_id`` or ``*``. An omitted zone and ``*`` both mean every zone, so both
  parse to ``zone=None`` and format without a zone.

Types and rights are case-insensitive; the canonical form is upper case, in the order
of RESOURCE_TYPES and RIGHTS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from edgecloud.server.errors import InvalidInput

RESOURCE_TYPES: tuple[str, ...] = (
    "VM",
    "HOST",
    "NET",
    "IMAGE",
    "USER",
    "TEMPLATE",
    "GROUP",
    "DATASTORE",
    "CLUSTER",
    "SECGROUP",
    "ZONE",
    "DOCUMENT",
    "VDC",
    "VROUTER",
    "MARKETPLACE",
    "MARKETPLACEAPP",
    "VMGROUP",
    "VNTEMPLATE",
    "BACKUPJOB",
)
RIGHTS: tuple[str, ...] = ("USE", "MANAGE", "ADMIN", "CREATE")
MAX_ID = 2**31 - 1  # object ids are INTEGER columns

UserKind = Literal["user", "group", "all"]
ResourceKind = Literal["id", "group", "cluster", "all"]

_USER_KINDS: dict[str, UserKind] = {"#": "user", "@": "group"}
_RESOURCE_KINDS: dict[str, ResourceKind] = {"#": "id", "@": "group", "%": "cluster"}
_PREFIXES: dict[str, str] = {"user": "#", "group": "@", "id": "#", "cluster": "%"}
_FORM = "'USER RESOURCES/WHICH RIGHTS [ZONE]', e.g. '#5 VM+NET/@102 USE+MANAGE'"

_Kind = TypeVar("_Kind", bound=str)


@dataclass(frozen=True)
class AclRule:
    """Grant rights on resources to one user, one group or everyone, in one zone or all."""

    user_kind: UserKind
    user_id: int | None
    resource_types: frozenset[str]
    resource_kind: ResourceKind
    resource_id: int | None
    rights: frozenset[str]
    zone: int | None = None

    def __post_init__(self) -> None:
        """Refuse a rule that no ACL string could describe."""
        if (self.user_kind == "all") != (self.user_id is None):
            raise ValueError("user_id must be None exactly when user_kind is 'all'")
        if (self.resource_kind == "all") != (self.resource_id is None):
            raise ValueError("resource_id must be None exactly when resource_kind is 'all'")
        if not self.resource_types or not self.resource_types <= set(RESOURCE_TYPES):
            raise ValueError(f"resource_types must be a non-empty subset of {RESOURCE_TYPES}")
        if not self.rights or not self.rights <= set(RIGHTS):
            raise ValueError(f"rights must be a non-empty subset of {RIGHTS}")


def parse_acl(text: str) -> AclRule:
    """Parse an ACL rule string; raise InvalidInput("rule", ...) naming the bad part."""
    parts = text.split()
    if len(parts) not in (3, 4):
        raise InvalidInput("rule", f"expected {_FORM}; got {len(parts)} parts in {text!r}")
    user_kind, user_id = _spec(parts[0], _USER_KINDS, "all", "user")
    types, which = _split_resources(parts[1])
    resource_kind, resource_id = _spec(which, _RESOURCE_KINDS, "all", "resource")
    return AclRule(
        user_kind=user_kind,
        user_id=user_id,
        resource_types=_names(types, RESOURCE_TYPES, "resource type"),
        resource_kind=resource_kind,
        resource_id=resource_id,
        rights=_names(parts[2], RIGHTS, "right"),
        zone=_zone(parts[3]) if len(parts) == 4 else None,
    )


def format_acl(rule: AclRule) -> str:
    """Write a rule in canonical form: types and rights in the order they are listed above."""
    user = _format_spec(rule.user_kind, rule.user_id)
    types = "+".join(_ordered(rule.resource_types, RESOURCE_TYPES))
    which = _format_spec(rule.resource_kind, rule.resource_id)
    rights = "+".join(_ordered(rule.rights, RIGHTS))
    zone = "" if rule.zone is None else f" #{rule.zone}"
    return f"{user} {types}/{which} {rights}{zone}"


def _spec(
    text: str, kinds: Mapping[str, _Kind], every: _Kind, part: str
) -> tuple[_Kind, int | None]:
    """Parse ``*`` or a prefixed id such as ``#5`` into (kind, id)."""
    if text == "*":
        return every, None
    kind = kinds.get(text[:1])
    if kind is None:
        forms = ", ".join(f"{prefix}<id>" for prefix in kinds)
        raise InvalidInput("rule", f"{part} {text!r} must be {forms} or *")
    return kind, _id(text[1:], f"{part} {text!r}")


def _id(digits: str, where: str) -> int:
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 10 or int(digits) > MAX_ID:
        raise InvalidInput("rule", f"{where} needs an id from 0 to {MAX_ID} after its prefix")
    return int(digits)


def _split_resources(text: str) -> tuple[str, str]:
    types, slash, which = text.partition("/")
    if not slash or "/" in which:
        raise InvalidInput("rule", f"resources {text!r} must be TYPES/WHICH, e.g. VM+NET/@102")
    return types, which


def _names(text: str, known: tuple[str, ...], part: str) -> frozenset[str]:
    """Parse names joined by '+' (case-insensitive), each known and none repeated."""
    names = text.upper().split("+")
    for name in names:
        if name not in known:
            raise InvalidInput(
                "rule", f"unknown {part} {name!r} in {text!r}; known: {', '.join(known)}"
            )
    if len(set(names)) < len(names):
        raise InvalidInput("rule", f"a {part} is repeated in {text!r}")
    return frozenset(names)


def _zone(text: str) -> int | None:
    if text == "*":
        return None
    if not text.startswith("#"):
        raise InvalidInput("rule", f"zone {text!r} must be #<zone_id> or *")
    return _id(text[1:], f"zone {text!r}")


def _format_spec(kind: str, ident: int | None) -> str:
    return "*" if ident is None else f"{_PREFIXES[kind]}{ident}"


def _ordered(names: Iterable[str], order: tuple[str, ...]) -> list[str]:
    chosen = set(names)
    return [name for name in order if name in chosen]
