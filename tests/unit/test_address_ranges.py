"""Tests for the address-range arithmetic of IPAM (services/address_ranges.py)."""

from __future__ import annotations

import ipaddress
from typing import get_args

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from edgecloud.server.errors import InvalidInput
from edgecloud.server.services.address_ranges import (
    MAX_SIZE,
    LeaseAddress,
    RangeSpec,
    RangeType,
    address_at,
    first_free,
    index_of,
    ranges_overlap,
    validate_range,
)

pytestmark = pytest.mark.unit

TYPES: tuple[RangeType, ...] = get_args(RangeType)


def valid(raw: RangeSpec, vnet_id: int = 7, ar_id: int = 0) -> RangeSpec:
    """Return ``raw`` validated for vnet 7 unless told otherwise."""
    return validate_range(raw, vnet_id=vnet_id, ar_id=ar_id)


def ip4(size: int, ip: str, mac: str | None = None) -> RangeSpec:
    """Return a validated IP4 range."""
    return valid(RangeSpec("IP4", size, ip=ip, mac=mac))


def static6(size: int, ip6: str, length: int = 64, mac: str | None = None) -> RangeSpec:
    """Return a validated IP6_STATIC range."""
    return valid(RangeSpec("IP6_STATIC", size, ip6=ip6, prefix_length=length, mac=mac))


# --- validate_range --------------------------------------------------------------------------

MINIMAL: dict[RangeType, RangeSpec] = {
    "IP4": RangeSpec("IP4", 10, ip="10.0.0.1"),
    "IP6": RangeSpec("IP6", 10, global_prefix="2001:db8::"),
    "IP6_STATIC": RangeSpec("IP6_STATIC", 10, ip6="2001:db8::10", prefix_length=64),
    "IP4_6": RangeSpec("IP4_6", 10, ip="10.0.0.1", ula_prefix="fd00::/64"),
    "IP4_6_STATIC": RangeSpec(
        "IP4_6_STATIC", 10, ip="10.0.0.1", ip6="2001:db8::10", prefix_length=64
    ),
    "ETHER": RangeSpec("ETHER", 10),
}


@pytest.mark.parametrize("kind", TYPES)
def test_validate_range_accepts_every_type(kind: RangeType) -> None:
    spec = valid(MINIMAL[kind])
    assert spec.type == kind
    assert spec.mac is not None
    assert valid(spec) == spec  # a normalised range passes unchanged


def test_validate_range_derives_mac_from_ipv4_like_opennebula() -> None:
    assert ip4(15, "172.16.100.110").mac == "02:00:ac:10:64:6e"


@pytest.mark.parametrize("kind", ["IP4_6", "IP4_6_STATIC"])
def test_validate_range_derives_mac_from_ipv4_for_dual_stack(kind: RangeType) -> None:
    assert valid(MINIMAL[kind]).mac == "02:00:0a:00:00:01"


@pytest.mark.parametrize("kind", ["IP6", "IP6_STATIC", "ETHER"])
def test_validate_range_derives_mac_per_vnet_and_ar(kind: RangeType) -> None:
    raw = MINIMAL[kind]
    macs = {valid(raw, vnet_id=v, ar_id=a).mac for v in range(50) for a in range(4)}
    assert len(macs) == 200
    assert valid(raw, vnet_id=3, ar_id=1).mac == valid(raw, vnet_id=3, ar_id=1).mac
    assert all(mac is not None and mac.startswith("02:00:") for mac in macs)


def test_validate_range_derived_mac_keeps_largest_range_after_prefix() -> None:
    for vnet_id in range(200):
        spec = valid(RangeSpec("ETHER", MAX_SIZE), vnet_id=vnet_id)
        assert address_at(spec, MAX_SIZE - 1).mac.startswith("02:00:")


def test_validate_range_normalises_addresses() -> None:
    spec = valid(
        RangeSpec(
            "IP4_6_STATIC",
            4,
            ip="10.0.0.1",
            mac="02-00-AB-CD-EF-01",
            ip6="2001:0DB8:0000::0010",
            prefix_length=64,
        )
    )
    assert (spec.mac, spec.ip6) == ("02:00:ab:cd:ef:01", "2001:db8::10")


@pytest.mark.parametrize("prefix", ["2001:db8:0:1::", "2001:0db8:0:1::/64", "2001:DB8:0:1:0::"])
def test_validate_range_normalises_prefix_with_or_without_length(prefix: str) -> None:
    spec = valid(RangeSpec("IP6", 1, global_prefix=prefix, ula_prefix="fd12:3456::/64"))
    assert (spec.global_prefix, spec.ula_prefix) == ("2001:db8:0:1::", "fd12:3456::")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (RangeSpec("IP5", 1), "ar.type"),  # type: ignore[arg-type]
        (RangeSpec("ETHER", 0), "ar.size"),
        (RangeSpec("ETHER", MAX_SIZE + 1), "ar.size"),
        (RangeSpec("IP4", 1), "ar.ip"),
        (RangeSpec("IP4", 1, ip="10.0.0.256"), "ar.ip"),
        (RangeSpec("IP4", 1, ip="2001:db8::1"), "ar.ip"),
        (RangeSpec("IP4", 2, ip="255.255.255.255"), "ar.size"),
        (RangeSpec("IP4", 1, ip="10.0.0.1", ip6="2001:db8::1"), "ar.ip6"),
        (RangeSpec("ETHER", 1, global_prefix="2001:db8::"), "ar.global_prefix"),
        (RangeSpec("IP6", 1), "ar.global_prefix"),
        (RangeSpec("IP6", 1, global_prefix="2001:db8::/48"), "ar.global_prefix"),
        (RangeSpec("IP6", 1, global_prefix="2001:db8::1"), "ar.global_prefix"),
        (RangeSpec("IP6", 1, global_prefix="10.0.0.0"), "ar.global_prefix"),
        (RangeSpec("IP6", 1, ula_prefix="2001:db8::"), "ar.ula_prefix"),
        (RangeSpec("IP6_STATIC", 1, prefix_length=64), "ar.ip6"),
        (RangeSpec("IP6_STATIC", 1, ip6="2001:db8::"), "ar.prefix_length"),
        (RangeSpec("IP6_STATIC", 1, ip6="fe80::1%eth0", prefix_length=64), "ar.ip6"),
        (RangeSpec("IP6_STATIC", 1, ip6="2001:db8::", prefix_length=0), "ar.prefix_length"),
        (RangeSpec("IP6_STATIC", 1, ip6="2001:db8::", prefix_length=129), "ar.prefix_length"),
        (RangeSpec("IP6_STATIC", 2, ip6="2001:db8::ff", prefix_length=120), "ar.size"),
        (RangeSpec("IP6_STATIC", 2, ip6="2001:db8::", prefix_length=128), "ar.size"),
        (RangeSpec("IP4_6_STATIC", 1, ip="10.0.0.1"), "ar.ip6"),
        (RangeSpec("ETHER", 1, mac="02:00:00:00:00"), "ar.mac"),
        (RangeSpec("ETHER", 1, mac="02:00:00:00:00:zz"), "ar.mac"),
        (RangeSpec("ETHER", 1, mac="02:00-00:00:00:01"), "ar.mac"),
        (RangeSpec("ETHER", 1, mac="03:00:00:00:00:01"), "ar.mac"),
        (RangeSpec("ETHER", 3, mac="fe:ff:ff:ff:ff:fe"), "ar.size"),
        (RangeSpec("ETHER", 2, mac="02:ff:ff:ff:ff:ff"), "ar.size"),
    ],
)
def test_validate_range_rejects_bad_field(raw: RangeSpec, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        valid(raw)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "raw",
    [
        RangeSpec("ETHER", MAX_SIZE),
        RangeSpec("IP4", 1, ip="255.255.255.255"),
        RangeSpec("IP4", 256, ip="255.255.255.0"),
        RangeSpec("IP6_STATIC", 1, ip6="2001:db8::", prefix_length=128),
        RangeSpec("IP6_STATIC", 256, ip6="2001:db8::", prefix_length=120),
        RangeSpec("ETHER", 2, mac="fe:ff:ff:ff:ff:fe"),
    ],
)
def test_validate_range_accepts_boundary(raw: RangeSpec) -> None:
    assert valid(raw).size == raw.size


# --- address_at ------------------------------------------------------------------------------


def test_address_at_ip4_counts_up_ip_and_mac() -> None:
    spec = ip4(300, "10.0.0.250")
    assert address_at(spec, 10) == LeaseAddress(
        10, "02:00:0a:00:01:04", "10.0.1.4", ip6=None, ip6_global=None, ip6_ula=None
    )


def test_address_at_ip6_static_counts_up_ip6() -> None:
    lease = address_at(static6(300, "2001:db8::ff", mac="02:00:00:00:00:ff"), 1)
    assert (lease.mac, lease.ip, lease.ip6) == ("02:00:00:00:01:00", None, "2001:db8::100")


def test_address_at_ip4_6_static_gives_both() -> None:
    lease = address_at(valid(MINIMAL["IP4_6_STATIC"]), 9)
    assert (lease.ip, lease.ip6, lease.ip6_global) == ("10.0.0.10", "2001:db8::19", None)


def test_address_at_ether_gives_only_mac() -> None:
    lease = address_at(valid(RangeSpec("ETHER", 2, mac="02:00:00:00:00:01")), 1)
    assert lease == LeaseAddress(1, "02:00:00:00:00:02", None, None, None, None)


def test_address_at_slaac_matches_known_eui64() -> None:
    # By hand: 02:00:c0 | a8:00:05 -> flip the U/L bit of 02 -> 00:00:c0 | ff:fe | a8:00:05,
    # so the interface id is 0000:c0ff:fea8:0005 (the brief's ::ff:fec0:a805 is not EUI-64).
    spec = valid(
        RangeSpec("IP4_6", 1, ip="192.168.0.5", global_prefix="2001:db8::", ula_prefix="fd00::")
    )
    lease = address_at(spec, 0)
    assert lease.mac == "02:00:c0:a8:00:05"
    assert lease.ip6_global == "2001:db8::c0ff:fea8:5"
    assert lease.ip6_ula == "fd00::c0ff:fea8:5"
    by_stdlib = ipaddress.IPv6Address(bytes.fromhex("20010db8000000000000c0fffea80005"))
    assert ipaddress.IPv6Address(lease.ip6_global) == by_stdlib


def test_address_at_slaac_sets_ul_bit_of_universal_mac() -> None:
    spec = valid(RangeSpec("IP6", 1, mac="00:1a:2b:3c:4d:5e", global_prefix="2001:db8::"))
    assert address_at(spec, 0).ip6_global == "2001:db8::21a:2bff:fe3c:4d5e"


@pytest.mark.parametrize("index", [-1, 10, 11])
def test_address_at_rejects_index_outside_range(index: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        address_at(valid(MINIMAL["IP4"]), index)


# --- index_of --------------------------------------------------------------------------------


def test_index_of_finds_each_kind_of_address() -> None:
    spec = valid(RangeSpec("IP4_6", 10, ip="10.0.0.1", global_prefix="2001:db8::"))
    lease = address_at(spec, 4)
    assert index_of(spec, ip="10.0.0.5") == 4
    assert index_of(spec, mac=lease.mac.upper()) == 4
    assert index_of(spec, ip6=lease.ip6_global) == 4
    assert index_of(spec, ip=lease.ip, mac=lease.mac, ip6=lease.ip6_global) == 4


@pytest.mark.parametrize(
    "address",
    [
        {"ip": "10.0.0.0"},
        {"ip": "10.0.0.11"},
        {"mac": "02:00:0a:00:00:0b"},
        {"ip6": "2001:db8::1"},  # inside the prefix, but not an EUI-64 address
        {"ip6": "2001:db8:0:1::c0ff:fea8:5"},  # another /64
        {"ip": "10.0.0.1", "mac": "02:00:0a:00:00:02"},  # two different leases
    ],
)
def test_index_of_returns_none_outside_range(address: dict[str, str]) -> None:
    spec = valid(RangeSpec("IP4_6", 10, ip="10.0.0.1", global_prefix="2001:db8::"))
    assert index_of(spec, **address) is None


def test_index_of_returns_none_for_address_kind_range_lacks() -> None:
    assert index_of(valid(MINIMAL["ETHER"]), ip="10.0.0.1", ip6="2001:db8::10") is None


@pytest.mark.parametrize(
    ("address", "field"),
    [({"ip": "10.0.0"}, "ip"), ({"mac": "nope"}, "mac"), ({"ip6": "2001:db8::g"}, "ip6")],
)
def test_index_of_rejects_malformed_address(address: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        index_of(valid(MINIMAL["IP4_6_STATIC"]), **address)
    assert caught.value.field == field


def test_index_of_needs_an_address() -> None:
    with pytest.raises(ValueError, match="needs"):
        index_of(valid(MINIMAL["ETHER"]))


# --- first_free ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("used", "size", "expected"),
    [
        ([], 3, 0),
        ([], 0, None),
        ([1, 2], 3, 0),
        ([0, 1, 2], 4, 3),
        ([0, 1, 2], 3, None),
        ([0, 1, 3, 4], 5, 2),
        ([0, 2, 3, 9], 10, 1),
    ],
)
def test_first_free_examples(used: list[int], size: int, expected: int | None) -> None:
    assert first_free(used, size) == expected


@given(st.sets(st.integers(0, 70)), st.integers(0, 64))
def test_first_free_equals_brute_force(used: set[int], size: int) -> None:
    expected = next((i for i in range(size) if i not in used), None)
    assert first_free(sorted(used), size) == expected


# --- ranges_overlap --------------------------------------------------------------------------


def test_ranges_overlap_ipv4() -> None:
    assert ranges_overlap(ip4(10, "10.0.0.1"), ip4(10, "10.0.0.10")) == "IPv4 addresses overlap"


def test_ranges_overlap_none_when_adjacent() -> None:
    assert ranges_overlap(ip4(10, "10.0.0.1"), ip4(10, "10.0.0.11")) is None


def test_ranges_overlap_mac() -> None:
    a = ip4(10, "10.0.0.1")
    b = valid(RangeSpec("ETHER", 1, mac="02:00:0a:00:00:0a"))
    assert ranges_overlap(a, b) == "MAC addresses overlap"


def test_ranges_overlap_static_ipv6() -> None:
    a = static6(16, "2001:db8::", mac="02:00:00:00:00:00")
    b = static6(1, "2001:db8::f", mac="02:00:00:00:01:00")
    assert ranges_overlap(a, b) == "IPv6 addresses overlap"
    assert ranges_overlap(a, static6(1, "2001:db8::10", mac="02:00:00:00:01:00")) is None


def test_ranges_overlap_static_ipv6_with_slaac() -> None:
    slaac = valid(RangeSpec("IP6", 4, mac="02:00:00:00:00:10", global_prefix="2001:db8::"))
    taken = address_at(slaac, 3).ip6_global
    assert taken is not None
    static = static6(1, taken, mac="02:00:00:00:01:00")
    assert ranges_overlap(static, slaac) == "IPv6 addresses overlap"
    after = static6(1, str(ipaddress.IPv6Address(taken) + 1), mac="02:00:00:00:01:00")
    assert ranges_overlap(after, slaac) is None


def test_ranges_overlap_slaac_across_oui_boundary() -> None:
    slaac = valid(RangeSpec("IP6", 4, mac="02:00:00:ff:ff:fe", global_prefix="2001:db8::"))
    taken = address_at(slaac, 3).ip6_global  # MAC 02:00:01:00:00:01, past the carry
    assert taken is not None
    assert ranges_overlap(static6(1, taken, mac="04:00:00:00:00:00"), slaac) is not None


# --- properties ------------------------------------------------------------------------------


@st.composite
def ranges(draw: st.DrawFn) -> RangeSpec:
    """Draw a validated range of any type, size and position."""
    kind = draw(st.sampled_from(TYPES))
    size = draw(st.integers(1, MAX_SIZE))
    fields: dict[str, object] = {}
    if kind in ("IP4", "IP4_6", "IP4_6_STATIC"):
        fields["ip"] = str(ipaddress.IPv4Address(draw(st.integers(0, 2**32 - size))))
    if kind in ("IP6", "IP4_6"):
        fields["global_prefix"] = str(ipaddress.IPv6Address(draw(st.integers(0, 2**64 - 1)) << 64))
        fields["ula_prefix"] = str(
            ipaddress.IPv6Address((0xFD << 56 | draw(st.integers(0, 2**56 - 1))) << 64)
        )
    if kind in ("IP6_STATIC", "IP4_6_STATIC"):
        host_bits = draw(st.integers(max(1, (size - 1).bit_length()), 127))
        network = draw(st.integers(0, 2**128 - 1)) >> host_bits << host_bits
        fields["ip6"] = str(
            ipaddress.IPv6Address(network + draw(st.integers(0, 2**host_bits - size)))
        )
        fields["prefix_length"] = 128 - host_bits
    if draw(st.booleans()):
        octet = draw(st.integers(0, 127)) * 2  # even: unicast
        mac = octet << 40 | draw(st.integers(0, 2**40 - size))
        fields["mac"] = ":".join(f"{mac:012x}"[i : i + 2] for i in range(0, 12, 2))
    raw = RangeSpec(kind, size, **fields)  # type: ignore[arg-type]
    return valid(raw, vnet_id=draw(st.integers(0, 2**31)), ar_id=draw(st.integers(0, 100)))


@given(ranges(), st.data())
def test_address_at_index_of_round_trip(spec: RangeSpec, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, spec.size - 1))
    lease = address_at(spec, index)
    assert index_of(spec, mac=lease.mac) == index
    assert index_of(spec, ip=lease.ip, mac=lease.mac, ip6=lease.ip6) == index
    for ip6 in (lease.ip6, lease.ip6_global, lease.ip6_ula):
        if ip6 is not None:
            assert index_of(spec, ip6=ip6) == index
    if lease.ip is not None:
        assert index_of(spec, ip=lease.ip) == index


@given(ranges(), st.data())
def test_address_at_distinct_indexes_give_distinct_addresses(
    spec: RangeSpec, data: st.DataObject
) -> None:
    assume(spec.size > 1)
    i, j = data.draw(st.lists(st.integers(0, spec.size - 1), min_size=2, max_size=2, unique=True))
    a, b = address_at(spec, i), address_at(spec, j)
    assert a.mac != b.mac
    for x, y in zip(_ips(a), _ips(b), strict=True):
        assert x is None or x != y


@given(ranges())
def test_validate_range_is_idempotent(spec: RangeSpec) -> None:
    assert valid(spec, vnet_id=1, ar_id=1) == spec


@given(ranges())
def test_ranges_overlap_range_with_itself(spec: RangeSpec) -> None:
    assert ranges_overlap(spec, spec) is not None


@given(st.integers(0, 40), st.integers(1, 20), st.integers(0, 40), st.integers(1, 20))
def test_ranges_overlap_ipv4_equals_brute_force(a: int, size_a: int, b: int, size_b: int) -> None:
    first = ip4(size_a, f"10.0.0.{a}", mac="02:00:00:00:00:00")
    second = ip4(size_b, f"10.0.0.{b}", mac="02:00:00:01:00:00")
    shared = set(range(a, a + size_a)) & set(range(b, b + size_b))
    assert (ranges_overlap(first, second) is not None) == bool(shared)


def _ips(lease: LeaseAddress) -> tuple[str | None, ...]:
    return (lease.ip, lease.ip6, lease.ip6_global, lease.ip6_ula)


@given(st.integers(0, 30), st.integers(1, 20), st.integers(0, 19), st.integers(-5, 5))
def test_ranges_overlap_slaac_static_equals_brute_force(
    start: int, size: int, near: int, delta: int
) -> None:
    mac = f"02:00:00:ff:ff:{0xE0 + start:02x}"  # runs across the 02:00:00 -> 02:00:01 carry
    slaac = valid(RangeSpec("IP6", size, mac=mac, global_prefix="2001:db8::"))
    anchor = address_at(slaac, min(near, size - 1)).ip6_global
    assert anchor is not None
    static = static6(4, str(ipaddress.IPv6Address(anchor) + delta), mac="04:00:00:00:00:00")
    slaac_ips = {address_at(slaac, i).ip6_global for i in range(size)}
    static_ips = {address_at(static, i).ip6 for i in range(4)}
    assert (ranges_overlap(slaac, static) is not None) == bool(slaac_ips & static_ips)
