"""Parse the compact option syntaxes: address ranges (--ar) and security rules (--rule)."""

from typing import Any

import typer

from edgecloud.api.network import AddressRangeIn, SecurityRule
from edgecloud.cli.nouns import build

# Which field the ADDRESS part of TYPE:ADDRESS:SIZE fills, per range type.
RANGE_ADDRESS = {
    "IP4": "ip",
    "IP4_6": "ip",
    "ETHER": "mac",
    "IP6": "global_prefix",
    "IP6_STATIC": "ip6",
    "IP4_6_STATIC": "ip6",
}
RANGE_HELP = (
    "Address range, TYPE:[ADDRESS:]SIZE (IP4:198.18.0.10:16, ETHER:16, IP6:2001:db8:::16) "
    "or key=value,... with the AR fields (type, ip, mac, size, global_prefix, ...)."
)
RULE_HELP = (
    "Firewall rule PROTOCOL[:DIRECTION[:PORTS[:CIDR]]], e.g. TCP:inbound:22,80:0.0.0.0/0; "
    "write port spans as 8000-8080."
)
PROTOCOLS = {"TCP", "UDP", "ICMP", "ICMPV6", "IPSEC", "ALL"}


def parse_range(spec: str) -> dict[str, Any]:
    """Parse an --ar value into the fields of an address range."""
    fields = _keyed(spec, "--ar") if "=" in spec else _positional_range(spec)
    return build(AddressRangeIn, "--ar", **fields).model_dump(exclude_none=True)


def _keyed(spec: str, option: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected key=value, got {part!r}", param_hint=option)
        fields[key.strip().lower()] = value.strip()
    if "type" in fields:
        fields["type"] = fields["type"].upper()
    return fields


def _positional_range(spec: str) -> dict[str, Any]:
    kind, _, rest = spec.partition(":")
    kind = kind.strip().upper()
    address, _, size = rest.rpartition(":")
    fields: dict[str, Any] = {"type": kind, "size": size or rest}
    if not address:
        return fields
    key = RANGE_ADDRESS.get(kind)
    if key is None:
        raise typer.BadParameter(f"unknown range type {kind!r}", param_hint="--ar")
    if key == "ip6" and "/" in address:
        address, fields["prefix_length"] = address.split("/", 1)
    fields[key] = address
    return fields


def parse_rule(spec: str) -> dict[str, Any]:
    """Parse a --rule value into the fields of a security group rule."""
    parts = [part.strip() for part in spec.split(":", 3)]
    protocol = parts[0].upper()
    if protocol not in PROTOCOLS:
        raise typer.BadParameter(f"unknown protocol {parts[0]!r}", param_hint="--rule")
    fields: dict[str, Any] = {"protocol": "ICMPv6" if protocol == "ICMPV6" else protocol}
    if len(parts) > 1 and parts[1]:
        fields["direction"] = parts[1].lower()
    if len(parts) > 2 and parts[2]:
        fields["range"] = parts[2].replace("-", ":")
    if len(parts) > 3 and parts[3]:
        fields["cidr"] = parts[3]
    return build(SecurityRule, "--rule", **fields).model_dump(exclude_none=True)
