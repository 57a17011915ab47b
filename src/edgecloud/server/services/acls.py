"""ACL rules: grants beyond permission bits, in OpenNebula's rule syntax."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.api import identity as wire
from edgecloud.server.auth.access import Principal
from edgecloud.server.auth.acl_syntax import AclRule, format_acl, parse_acl
from edgecloud.server.db.models import AclRuleRow
from edgecloud.server.errors import Conflict, Forbidden, NotFound

# Members of a group may create their own workloads and see the shared infrastructure;
# like OpenNebula, every new group gets these rules (group 1, 'users', at first start).
GROUP_ACLS = (
    "@{gid} VM+NET+IMAGE+TEMPLATE+SECGROUP/* CREATE",
    "@{gid} CLUSTER+DATASTORE/* USE",
)


def rule_of(row: AclRuleRow) -> AclRule:
    """Return the parsed rule of a stored row."""
    return AclRule(
        user_kind=row.user_kind,  # type: ignore[arg-type]
        user_id=row.user_id,
        resource_types=frozenset(row.resource_types.split("+")),
        resource_kind=row.resource_kind,  # type: ignore[arg-type]
        resource_id=row.resource_id,
        rights=frozenset(row.rights.split("+")),
        zone=row.zone,
    )


def _wire(row: AclRuleRow) -> wire.Acl:
    return wire.Acl(id=row.id, rule=format_acl(rule_of(row)))


def add_rule(session: Session, text: str) -> AclRuleRow:
    """Store a rule given as text (no auth check: used by bootstrap and by create)."""
    rule = parse_acl(text)
    canonical = format_acl(rule)
    for existing in session.scalars(select(AclRuleRow)):
        if format_acl(rule_of(existing)) == canonical:
            raise Conflict(
                f"rule: '{canonical}' exists already as rule {existing.id}", field="rule"
            )
    row = AclRuleRow(
        user_kind=rule.user_kind,
        user_id=rule.user_id,
        resource_types="+".join(sorted(rule.resource_types)),
        resource_kind=rule.resource_kind,
        resource_id=rule.resource_id,
        rights="+".join(sorted(rule.rights)),
        zone=rule.zone,
    )
    session.add(row)
    session.flush()
    return row


def create(session: Session, principal: Principal, body: wire.AclCreate) -> wire.Acl:
    """Add a rule (admins only)."""
    if not principal.is_admin:
        raise Forbidden("only admins can add ACL rules")
    return _wire(add_rule(session, body.rule))


def list_all(session: Session, principal: Principal) -> list[wire.Acl]:
    """List rules: admins all, others the rules that apply to them."""
    rows = session.scalars(select(AclRuleRow).order_by(AclRuleRow.id)).all()
    if principal.is_admin:
        return [_wire(r) for r in rows]
    mine = set(principal.rules)
    return [_wire(r) for r in rows if rule_of(r) in mine]


def get(session: Session, principal: Principal, rule_id: int) -> wire.Acl:
    """Show one rule: admins any, others the rules that apply to them."""
    row = session.get(AclRuleRow, rule_id)
    if row is None or not (principal.is_admin or rule_of(row) in principal.rules):
        raise NotFound(f"ACL rule {rule_id} does not exist", field="id")
    return _wire(row)


def delete(session: Session, principal: Principal, rule_id: int) -> None:
    """Remove a rule (admins only)."""
    if not principal.is_admin:
        raise Forbidden("only admins can remove ACL rules")
    row = session.get(AclRuleRow, rule_id)
    if row is None:
        raise NotFound(f"ACL rule {rule_id} does not exist", field="id")
    session.delete(row)
    session.flush()
