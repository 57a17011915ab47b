"""SECURITY_GROUP documents, and OpenNebula's RULE vectors read into our wire rules.

Conventions where OpenNebula and we differ:
- A rule's IP + SIZE is stored as CIDR blocks (an unaligned run becomes several rules); it
  comes back as IP + SIZE of each block. NETWORK_ID becomes the blocks of that vnet's ranges
  when the rule is written. SECURITY_GROUP_ID (a rule naming another group) is ours.
- A RULE carries RANGE, IP, SIZE, ICMP_TYPE as OpenNebula sends them, though
  security_group.xsd allows it only PROTOCOL and RULE_TYPE (and a TEMPLATE only
  DESCRIPTION and RULEs).
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Any

from edgecloud.api import network as wire
from edgecloud.server.db.models import AddressRange, SecurityGroup
from edgecloud.server.errors import InvalidInput
from edgecloud.server.xmlrpc.core import wire_body
from edgecloud.server.xmlrpc.m_network_render import number, owned, vectors
from edgecloud.server.xmlrpc.xml import ids, template

PROTOCOLS = {p.upper(): p for p in ("TCP", "UDP", "ICMP", "ICMPv6", "IPSEC", "ALL")}
RULE_KEYS = frozenset(
    {"PROTOCOL", "RULE_TYPE", "RANGE", "IP", "SIZE", "NETWORK_ID", "ICMP_TYPE", "ICMPV6_TYPE"}
    | {"SECURITY_GROUP_ID"}
)


# --- rules in --------------------------------------------------------------------------
def rules_in(
    attrs: dict[str, Any], network_blocks: Callable[[int], list[str]]
) -> list[wire.SecurityRule]:
    """The RULE vectors as our rules (one per CIDR block of IP + SIZE or NETWORK_ID)."""
    out: list[wire.SecurityRule] = []
    for index, rule in enumerate(vectors(attrs, "RULE", "PROTOCOL")):
        name = f"RULE[{index}]"
        unknown = sorted(set(rule) - RULE_KEYS)
        if unknown:
            raise InvalidInput(f"{name}.{unknown[0]}", "not a security group rule attribute")
        protocol = PROTOCOLS.get(str(rule.get("PROTOCOL", "")).upper())
        if protocol is None:
            raise InvalidInput(f"{name}.PROTOCOL", f"must be one of {', '.join(PROTOCOLS)}")
        direction = str(rule.get("RULE_TYPE", "")).lower()
        if direction not in ("inbound", "outbound"):
            raise InvalidInput(f"{name}.RULE_TYPE", "must be inbound or outbound")
        base: dict[str, Any] = {"protocol": protocol, "direction": direction}
        if rule.get("RANGE", "").strip():
            base["range"] = rule["RANGE"].strip()
        icmp = (rule.get("ICMP_TYPE") or rule.get("ICMPV6_TYPE") or "").strip()
        if icmp:
            base["icmp_type"] = number(icmp, f"{name}.ICMP_TYPE")
        if rule.get("SECURITY_GROUP_ID", "").strip():
            group = number(rule["SECURITY_GROUP_ID"], f"{name}.SECURITY_GROUP_ID")
            base["security_group_id"] = group
        blocks: list[str | None] = [None]
        if rule.get("IP", "").strip():
            blocks = list(_blocks(rule["IP"], rule.get("SIZE", "1"), name))
        elif rule.get("NETWORK_ID", "").strip():
            blocks = list(network_blocks(number(rule["NETWORK_ID"], f"{name}.NETWORK_ID")))
        out += [wire_body(wire.SecurityRule, **base, cidr=block) for block in blocks]
    return out


def _blocks(ip: str, size: str, name: str) -> list[str]:
    try:
        first = ipaddress.ip_address(ip.strip())
        count = number(size, f"{name}.SIZE")
        if count < 1:
            raise ValueError("SIZE must be at least 1")
        last = first + (count - 1)
        return [str(n) for n in ipaddress.summarize_address_range(first, last)]
    except (ValueError, ipaddress.AddressValueError) as exc:
        raise InvalidInput(f"{name}.IP", f"{ip} + {size} addresses: {exc}") from None


def range_blocks(ars: list[AddressRange]) -> list[str]:
    """The CIDR blocks of a vnet's IPv4 and static IPv6 addresses."""
    out: list[str] = []
    for ar in ars:
        for start in (ar.ip, ar.ip6):
            if start:
                first = ipaddress.ip_address(start)
                last = first + (ar.size - 1)
                out += [str(n) for n in ipaddress.summarize_address_range(first, last)]
    return out


# --- security group documents ----------------------------------------------------------
def rule_attrs(rule: Mapping[str, Any]) -> dict[str, str]:
    """One stored rule as OpenNebula's RULE vector (PROTOCOL and RULE_TYPE first)."""
    out = {"PROTOCOL": str(rule.get("protocol", "ALL"))}
    out["RULE_TYPE"] = str(rule.get("direction", "inbound"))
    if rule.get("range"):
        out["RANGE"] = str(rule["range"])
    if rule.get("cidr"):
        network = ipaddress.ip_network(str(rule["cidr"]), strict=False)
        out["IP"], out["SIZE"] = str(network.network_address), str(network.num_addresses)
    if rule.get("icmp_type") is not None:
        key = "ICMPV6_TYPE" if out["PROTOCOL"] == "ICMPv6" else "ICMP_TYPE"
        out[key] = str(rule["icmp_type"])
    if rule.get("security_group_id") is not None:
        out["SECURITY_GROUP_ID"] = str(rule["security_group_id"])
    return out


def secgroup_template(row: SecurityGroup) -> dict[str, Any]:
    """The TEMPLATE: DESCRIPTION, the rules, then the group's other attributes."""
    out: dict[str, Any] = {}
    if "DESCRIPTION" in row.template:
        out["DESCRIPTION"] = row.template["DESCRIPTION"]
    out["RULE"] = [rule_attrs(r) for r in row.rules]
    out.update((k, v) for k, v in row.template.items() if k not in out)
    return out


def secgroup_doc(row: SecurityGroup, uname: str, gname: str) -> ET.Element:
    """A SECURITY_GROUP as security_group.xsd allows it: its TEMPLATE holds DESCRIPTION and
    RULEs of PROTOCOL and RULE_TYPE only (OpenNebula itself sends more than its XSD says;
    the rest of a rule is kept, and a read-back written with `update` keeps it: see
    `bare_read_back`)."""
    node = owned("SECURITY_GROUP", row, uname, gname)
    for tag in ("UPDATED_VMS", "OUTDATED_VMS", "UPDATING_VMS", "ERROR_VMS"):
        node.append(ids(tag, []))
    shown: dict[str, Any] = {}
    if "DESCRIPTION" in row.template:
        shown["DESCRIPTION"] = row.template["DESCRIPTION"]
    shown["RULE"] = [_bare(rule_attrs(r)) for r in row.rules]
    node.append(template("TEMPLATE", shown))
    return node


def _bare(rule: Mapping[str, str]) -> dict[str, str]:
    return {"PROTOCOL": rule["PROTOCOL"], "RULE_TYPE": rule["RULE_TYPE"]}


def bare_read_back(incoming: object, rules: list[dict[str, Any]]) -> bool:
    """Whether `incoming` RULEs are exactly what `secgroup_doc` shows of `rules` (a client
    writing back what it read): then the full rules are kept, not narrowed to those."""
    given = incoming if isinstance(incoming, list) else [incoming] if incoming else []
    read: list[dict[str, Any]] = [dict(r) for r in given if isinstance(r, Mapping)]
    if len(read) != len(given) or not all(set(r) <= {"PROTOCOL", "RULE_TYPE"} for r in read):
        return False
    shown = [_bare(rule_attrs(r)) for r in rules]
    return read == shown and any(len(rule_attrs(r)) > 2 for r in rules)
