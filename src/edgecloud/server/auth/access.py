"""Who may do what: the caller's principal, permission bits and ACL rules, in Python and SQL."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true

from edgecloud.server.auth.acl_syntax import AclRule
from edgecloud.server.auth.permissions import group_bit, other_bit, owner_bit
from edgecloud.server.db.models import (
    Cluster,
    ClusterDatastore,
    ClusterVnet,
    Datastore,
    Host,
    Image,
    Owned,
    Provision,
    SecurityGroup,
    Vm,
    VmTemplate,
    Vnet,
)

ADMIN_GROUP_ID = 0
USERS_GROUP_ID = 1

# OpenNebula's resource names in ACL rules, mapped to our tables.
KIND_MODEL: dict[str, type[Owned]] = {
    "VM": Vm,
    "HOST": Host,
    "NET": Vnet,
    "IMAGE": Image,
    "TEMPLATE": VmTemplate,
    "DATASTORE": Datastore,
    "CLUSTER": Cluster,
    "SECGROUP": SecurityGroup,
    "PROVISION": Provision,  # owner and group bits only: ACL rules do not name it
}


@dataclass(frozen=True)
class ObjectRef:
    """The parts of an object that decide access to it."""

    id: int
    owner_id: int
    group_id: int
    perms: int
    cluster_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: user, groups, admin flag and the ACL rules that apply."""

    user_id: int
    name: str
    group_id: int
    group_ids: frozenset[int]
    rules: tuple[AclRule, ...] = field(default=())

    @property
    def is_admin(self) -> bool:
        """Tell whether the caller is in the admin group (OpenNebula's oneadmin)."""
        return self.user_id == 0 or ADMIN_GROUP_ID in self.group_ids

    def _rules_for(self, kind: str, right: str) -> Iterable[AclRule]:
        return (r for r in self.rules if kind in r.resource_types and right in r.rights)

    def can(self, right: str, kind: str, obj: ObjectRef) -> bool:
        """Decide whether the caller holds `right` on `obj` of resource `kind`."""
        if self.is_admin:
            return True
        if obj.owner_id == self.user_id and obj.perms & owner_bit(right):
            return True
        if obj.group_id in self.group_ids and obj.perms & group_bit(right):
            return True
        if obj.perms & other_bit(right):
            return True
        return any(_rule_covers(r, obj) for r in self._rules_for(kind, right))

    def can_create(self, kind: str) -> bool:
        """Decide whether the caller may create objects of `kind`."""
        return self.is_admin or any(True for _ in self._rules_for(kind, "CREATE"))

    def visible(self, kind: str, right: str = "USE") -> ColumnElement[bool]:
        """Return a SQL condition selecting the objects of `kind` the caller holds `right` on."""
        if self.is_admin:
            return true()
        model = KIND_MODEL[kind]
        perms = model.perms
        terms: list[ColumnElement[bool]] = [
            and_(model.owner_id == self.user_id, perms.op("&")(owner_bit(right)) != 0),
            and_(model.group_id.in_(self.group_ids), perms.op("&")(group_bit(right)) != 0),
            perms.op("&")(other_bit(right)) != 0,
        ]
        for rule in self._rules_for(kind, right):
            terms.append(_rule_clause(rule, kind, model))
        return or_(*terms)


def _rule_covers(rule: AclRule, obj: ObjectRef) -> bool:
    if rule.resource_kind == "all":
        return True
    if rule.resource_kind == "id":
        return obj.id == rule.resource_id
    if rule.resource_kind == "group":
        return obj.group_id == rule.resource_id
    return rule.resource_id in obj.cluster_ids


def _rule_clause(rule: AclRule, kind: str, model: type[Owned]) -> ColumnElement[bool]:
    if rule.resource_kind == "all":
        return true()
    if rule.resource_kind == "id":
        return model.id == rule.resource_id
    if rule.resource_kind == "group":
        return model.group_id == rule.resource_id
    return _cluster_clause(kind, rule.resource_id or 0)


def _cluster_clause(kind: str, cluster_id: int) -> ColumnElement[bool]:
    if kind in ("HOST", "VM"):
        model: Any = KIND_MODEL[kind]
        return model.cluster_id == cluster_id  # type: ignore[no-any-return]
    if kind == "CLUSTER":
        return Cluster.id == cluster_id
    if kind == "DATASTORE":
        link = select(ClusterDatastore.datastore_id).where(
            ClusterDatastore.cluster_id == cluster_id,
            ClusterDatastore.datastore_id == Datastore.id,
        )
        return exists(link)
    if kind == "NET":
        vlink = select(ClusterVnet.vnet_id).where(
            ClusterVnet.cluster_id == cluster_id, ClusterVnet.vnet_id == Vnet.id
        )
        return exists(vlink)
    return false()


def rule_applies_to(rule: AclRule, *, user_id: int, group_ids: frozenset[int]) -> bool:
    """Tell whether an ACL rule's user part matches this user."""
    if rule.user_kind == "all":
        return True
    if rule.user_kind == "user":
        return rule.user_id == user_id
    return rule.user_id in group_ids
