"""The compact option syntaxes: address ranges (--ar) and security rules (--rule)."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from edgecloud.cli.specs import parse_range, parse_rule

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        ("IP4:198.18.0.10:16", {"type": "IP4", "ip": "198.18.0.10", "size": 16}),
        ("ip4:198.18.0.10:16", {"type": "IP4", "ip": "198.18.0.10", "size": 16}),
        ("ETHER:8", {"type": "ETHER", "size": 8}),
        ("ETHER:02:00:00:00:00:01:8", {"type": "ETHER", "mac": "02:00:00:00:00:01", "size": 8}),
        ("IP6:2001:db8:::256", {"type": "IP6", "global_prefix": "2001:db8::", "size": 256}),
        (
            "IP6_STATIC:2001:db8::10/64:4",
            {"type": "IP6_STATIC", "ip6": "2001:db8::10", "prefix_length": 64, "size": 4},
        ),
        (
            "type=ip4_6,ip=192.0.2.1,global_prefix=2001:db8::,size=4",
            {"type": "IP4_6", "ip": "192.0.2.1", "global_prefix": "2001:db8::", "size": 4},
        ),
    ],
)
def test_parse_range_reads_type_address_size(spec: str, fields: dict[str, Any]) -> None:
    assert parse_range(spec) == fields


@pytest.mark.parametrize(
    "spec", ["IP4:198.18.0.10:many", "FOO:1.2.3.4:4", "IP4:1.2.3.4:0", "size=4,colour=red", "x"]
)
def test_parse_range_refuses_bad_specs(spec: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_range(spec)


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        ("ALL", {"protocol": "ALL", "direction": "inbound"}),
        (
            "TCP:inbound:22,80:0.0.0.0/0",
            {"protocol": "TCP", "direction": "inbound", "range": "22,80", "cidr": "0.0.0.0/0"},
        ),
        (
            "tcp:outbound:1000-2000:2001:db8::/32",
            {
                "protocol": "TCP",
                "direction": "outbound",
                "range": "1000:2000",
                "cidr": "2001:db8::/32",
            },
        ),
        ("udp::53", {"protocol": "UDP", "direction": "inbound", "range": "53"}),
        ("icmpv6:outbound", {"protocol": "ICMPv6", "direction": "outbound"}),
    ],
)
def test_parse_rule_reads_protocol_direction_ports_cidr(spec: str, fields: dict[str, Any]) -> None:
    assert parse_rule(spec) == fields


@pytest.mark.parametrize("spec", ["SCTP", "TCP:sideways", "TCP:inbound:http"])
def test_parse_rule_refuses_bad_specs(spec: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_rule(spec)
