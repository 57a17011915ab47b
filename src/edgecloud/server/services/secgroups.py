"""Security groups: firewall rules stored here, applied on hosts by the network drivers."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.api import network as wire
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import SecurityGroup, Vnet
from edgecloud.server.errors import Conflict, InvalidInput
from edgecloud.server.services.objects import parse_template_input
from edgecloud.server.services.resource import OwnedResource

PORT_PROTOCOLS = {"TCP", "UDP"}


class SecurityGroups(
    OwnedResource[
        SecurityGroup, wire.SecurityGroupCreate, wire.SecurityGroupUpdate, wire.SecurityGroup
    ]
):
    """Use cases of security groups."""

    kind = "SECGROUP"
    model = SecurityGroup
    read_type = wire.SecurityGroup

    def build(
        self, session: Session, principal: Principal, body: wire.SecurityGroupCreate
    ) -> SecurityGroup:
        """Return a new security group row with checked rules."""
        return SecurityGroup(
            name=body.name,
            rules=_checked_rules(session, body.rules),
            template=parse_template_input(body.template),
        )

    def change(
        self,
        session: Session,
        principal: Principal,
        row: SecurityGroup,
        body: wire.SecurityGroupUpdate,
    ) -> None:
        """Replace rules or attributes."""
        if body.rules is not None:
            row.rules = _checked_rules(session, body.rules)
        if body.template is not None:
            row.template = parse_template_input(body.template)

    def before_delete(self, session: Session, principal: Principal, row: SecurityGroup) -> None:
        """Refuse the default group and groups a vnet still names."""
        if row.id == 0:
            raise Conflict("the default security group 0 cannot be deleted", field="id")
        for vnet_id, groups in session.execute(select(Vnet.id, Vnet.security_groups)):
            if row.id in groups:
                raise Conflict(f"vnet {vnet_id} uses security group {row.id}", field="id")

    def render(self, session: Session, row: SecurityGroup) -> dict[str, Any]:
        """Add the rules."""
        return {"rules": [wire.SecurityRule(**r) for r in row.rules]}


def _checked_rules(session: Session, rules: list[wire.SecurityRule]) -> list[dict[str, Any]]:
    out = []
    for index, rule in enumerate(rules):
        field = f"rules[{index}]"
        if rule.range is not None:
            if rule.protocol not in PORT_PROTOCOLS:
                raise InvalidInput(
                    f"{field}.range", f"ports apply only to TCP and UDP, not {rule.protocol}"
                )
            _check_ports(rule.range, f"{field}.range")
        if rule.cidr is not None:
            try:
                ipaddress.ip_network(rule.cidr, strict=False)
            except ValueError as exc:
                raise InvalidInput(f"{field}.cidr", str(exc)) from exc
        if rule.icmp_type is not None and rule.protocol not in ("ICMP", "ICMPv6"):
            raise InvalidInput(f"{field}.icmp_type", "icmp_type applies only to ICMP rules")
        sg = rule.security_group_id
        if sg is not None and session.get(SecurityGroup, sg) is None:
            raise InvalidInput(f"{field}.security_group_id", f"security group {sg} does not exist")
        out.append(rule.model_dump(exclude_none=True))
    return out


def _check_ports(text: str, field: str) -> None:
    for part in text.replace(" ", "").split(","):
        bounds = part.split(":")
        if not part or len(bounds) > 2 or not all(b.isdigit() for b in bounds):
            raise InvalidInput(field, f"'{part}' is not a port or a range like 80:90")
        low, high = int(bounds[0]), int(bounds[-1])
        if not 1 <= low <= high <= 65535:
            raise InvalidInput(field, f"'{part}': ports go from 1 to 65535, low before high")
