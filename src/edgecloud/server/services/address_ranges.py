"""Address-range arithmetic for IPAM: check a vnet's address ranges and compute lease addresses.

Modelled on OpenNebula's address ranges (AR). A range is a run of ``size`` consecutive
leases; lease ``i`` gets the MAC ``mac + i`` and, depending on the type:

- ``IP4``: the IPv4 address ``ip + i``;
- ``IP6``: SLAAC addresses, a /64 prefix (global and/or ULA) plus the EUI-64 of its MAC;
- ``IP6_STATIC``: the IPv6 address ``ip6 + i`` inside ``ip6/prefix_length``;
- ``IP4_6`` and ``IP4_6_STATIC``: IPv4 plus the SLAAC or static IPv6 addresses;
- ``ETHER``: only the MAC.

Everything here is pure: the lease store keeps which indexes are taken.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from edgecloud.server.errors import InvalidInput

# The kinds of address range, with OpenNebula's names.
RangeType = Literal["IP4", "IP6", "IP6_STATIC", "IP4_6", "IP4_6_STATIC", "ETHER"]

MAX_SIZE = 1 << 24  # the most leases one range may have (16,777,216, as in OpenNebula)
_IP4_END = 1 << 32
_MAC_END = 1 << 48
_LOW_64 = (1 << 64) - 1
_LOW_24 = (1 << 24) - 1
_MAC_PREFIX = 0x0200 << 32  # OpenNebula's default MAC_PREFIX 02:00: locally administered, unicast
_EUI64_FILLER = 0xFFFE  # inserted between the two halves of the MAC (RFC 4291 appendix A)
_UL_BIT = 0x02 << 16  # the universal/local bit, within the MAC's first three octets
_ULA_TOP_7_BITS = 0x7E  # fc00::/7
_MAC_RE = re.compile(r"[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}", re.IGNORECASE)

_IP4_TYPES = frozenset({"IP4", "IP4_6", "IP4_6_STATIC"})
_SLAAC_TYPES = frozenset({"IP6", "IP4_6"})
_STATIC_TYPES = frozenset({"IP6_STATIC", "IP4_6_STATIC"})
_OPTIONAL_FIELDS = ("ip", "global_prefix", "ula_prefix", "ip6", "prefix_length")

_Interval = tuple[int, int]  # first and last value, both included


@dataclass(frozen=True)
class RangeSpec:
    """Describe one address range of a vnet, as given by a user or stored once validated."""

    type: RangeType
    size: int
    ip: str | None = None
    mac: str | None = None
    global_prefix: str | None = None
    ula_prefix: str | None = None
    ip6: str | None = None
    prefix_length: int | None = None


@dataclass(frozen=True)
class LeaseAddress:
    """Hold the addresses of one lease of a range; fields the range type lacks are None."""

    index: int
    mac: str
    ip: str | None
    ip6: str | None
    ip6_global: str | None
    ip6_ula: str | None


# --- validation ------------------------------------------------------------------------------


def validate_range(raw: RangeSpec, *, vnet_id: int, ar_id: int) -> RangeSpec:
    """Check an address range and return it normalised, deriving the MAC when none is given.

    Raises InvalidInput naming the field (``ar.ip``, ``ar.size``, ...) on the first problem.
    """
    _check_type(raw.type)
    _check_size(raw.size)
    _check_fields_fit_type(raw)
    ip = _parse_range_ip4(raw) if raw.type in _IP4_TYPES else None
    global_prefix = _parse_prefix(raw.global_prefix, "ar.global_prefix")
    ula_prefix = _parse_prefix(raw.ula_prefix, "ar.ula_prefix")
    if raw.type == "IP6" and global_prefix is None and ula_prefix is None:
        raise InvalidInput("ar.global_prefix", "IP6 ranges need global_prefix or ula_prefix")
    ip6 = _parse_range_ip6(raw) if raw.type in _STATIC_TYPES else None
    mac = _range_mac(raw, ip, vnet_id=vnet_id, ar_id=ar_id)
    return RangeSpec(
        type=raw.type,
        size=raw.size,
        ip=None if ip is None else str(ipaddress.IPv4Address(ip)),
        mac=_format_mac(mac),
        global_prefix=_format_ip6(global_prefix),
        ula_prefix=_format_ip6(ula_prefix),
        ip6=_format_ip6(ip6),
        prefix_length=raw.prefix_length if ip6 is not None else None,
    )


def _check_type(value: str) -> None:
    if value not in get_args(RangeType):
        raise InvalidInput("ar.type", f"must be one of {', '.join(get_args(RangeType))}")


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise InvalidInput("ar.size", f"must be an integer from 1 to {MAX_SIZE:,}")


def _check_fields_fit_type(raw: RangeSpec) -> None:
    # A field the type ignores is almost always a mistake (IP6 meant as IP6_STATIC, ...).
    used = _fields_of(raw.type)
    for name in _OPTIONAL_FIELDS:
        if getattr(raw, name) is not None and name not in used:
            raise InvalidInput(f"ar.{name}", f"not used by {raw.type} ranges")


def _fields_of(kind: str) -> set[str]:
    fields = {"ip"} if kind in _IP4_TYPES else set()
    if kind in _SLAAC_TYPES:
        fields |= {"global_prefix", "ula_prefix"}
    if kind in _STATIC_TYPES:
        fields |= {"ip6", "prefix_length"}
    return fields


def _parse_range_ip4(raw: RangeSpec) -> int:
    if raw.ip is None:
        raise InvalidInput("ar.ip", f"required for {raw.type} ranges")
    first = _parse_ip4(raw.ip, "ar.ip")
    if first + raw.size > _IP4_END:
        raise InvalidInput(
            "ar.size", f"{raw.size} addresses from {raw.ip} run past 255.255.255.255"
        )
    return first


def _parse_range_ip6(raw: RangeSpec) -> int:
    if raw.ip6 is None:
        raise InvalidInput("ar.ip6", f"required for {raw.type} ranges")
    first = _parse_ip6(raw.ip6, "ar.ip6")
    length = raw.prefix_length
    if length is None:
        raise InvalidInput("ar.prefix_length", f"required for {raw.type} ranges")
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 128:
        raise InvalidInput("ar.prefix_length", "must be an integer from 1 to 128")
    host_bits = 128 - length
    if (first & ((1 << host_bits) - 1)) + raw.size > 1 << host_bits:
        raise InvalidInput("ar.size", f"{raw.size} addresses from {raw.ip6} leave the /{length}")
    return first


def _parse_prefix(text: str | None, field: str) -> int | None:
    if text is None:
        return None
    address, slash, length = text.partition("/")
    if slash and length != "64":
        raise InvalidInput(field, "must be a /64 prefix")
    value = _parse_ip6(address, field)
    if value & _LOW_64:
        raise InvalidInput(field, "must be a /64 prefix: the last 64 bits must be zero")
    if field == "ar.ula_prefix" and value >> 121 != _ULA_TOP_7_BITS:
        raise InvalidInput(field, "must be inside fc00::/7")
    return value


def _range_mac(raw: RangeSpec, ip: int | None, *, vnet_id: int, ar_id: int) -> int:
    if raw.mac is None:
        return _derived_mac(ip, raw.size, vnet_id=vnet_id, ar_id=ar_id)
    first = _parse_mac(raw.mac, "ar.mac")
    if first >> 40 & 1:
        raise InvalidInput("ar.mac", "must be unicast (lowest bit of the first octet 0)")
    last = first + raw.size - 1
    # The first octet changes at most once in a range (size <= 2**24); odd means multicast.
    if last >= _MAC_END or last >> 40 & 1:
        raise InvalidInput("ar.size", f"{raw.size} MACs from {raw.mac} run into multicast MACs")
    return first


def _derived_mac(ip: int | None, size: int, *, vnet_id: int, ar_id: int) -> int:
    if ip is not None:
        return _MAC_PREFIX | ip  # OpenNebula: MAC_PREFIX followed by the 4 bytes of the IPv4
    # No IPv4 to copy: spread ranges over the 2**32 MACs after 02:00 by a hash of the range's
    # identity, so different vnets are very unlikely to share MACs (a vnet's own ranges are
    # checked by ranges_overlap); the modulo keeps the whole range after 02:00.
    digest = hashlib.blake2b(f"vnet {vnet_id} ar {ar_id}".encode(), digest_size=4).digest()
    return _MAC_PREFIX | int.from_bytes(digest, "big") % (_IP4_END - size + 1)


# --- parsing and formatting ------------------------------------------------------------------


def _parse_ip4(text: str, field: str) -> int:
    try:
        return int(ipaddress.IPv4Address(text))
    except ValueError:
        raise InvalidInput(field, "not an IPv4 address") from None


def _parse_ip6(text: str, field: str) -> int:
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise InvalidInput(field, "not an IPv6 address") from None
    if address.scope_id is not None:
        raise InvalidInput(field, "must not have a scope (%zone)")
    return int(address)


def _parse_mac(text: str, field: str) -> int:
    if not isinstance(text, str) or not _MAC_RE.fullmatch(text):
        raise InvalidInput(field, "not a MAC address like 02:00:0a:00:00:01")
    return int(re.sub("[:-]", "", text), 16)


def _format_mac(value: int) -> str:
    digits = f"{value:012x}"
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _format_ip6(value: int | None) -> str | None:
    return None if value is None else str(ipaddress.IPv6Address(value))


def _interface_id(mac: int) -> int:
    """Return the modified EUI-64 interface id of a MAC: flip the U/L bit, insert ff:fe."""
    return ((mac >> 24) ^ _UL_BIT) << 40 | _EUI64_FILLER << 24 | mac & _LOW_24


def _mac_of_interface_id(iid: int) -> int | None:
    """Return the MAC an EUI-64 interface id was built from, or None if it is not one."""
    if iid >> 24 & 0xFFFF != _EUI64_FILLER:
        return None
    return ((iid >> 40) ^ _UL_BIT) << 24 | iid & _LOW_24


# --- leases ----------------------------------------------------------------------------------


def address_at(spec: RangeSpec, index: int) -> LeaseAddress:
    """Return the addresses of the lease at ``index`` (0-based) of a validated range.

    Raises ValueError when ``index`` is outside 0..size-1.
    """
    if not 0 <= index < spec.size:
        raise ValueError(f"lease index {index} is outside 0..{spec.size - 1}")
    mac = _first_mac(spec) + index
    return LeaseAddress(
        index=index,
        mac=_format_mac(mac),
        ip=None if spec.ip is None else str(ipaddress.IPv4Address(spec.ip) + index),
        ip6=None if spec.ip6 is None else str(ipaddress.IPv6Address(spec.ip6) + index),
        ip6_global=_slaac(spec.global_prefix, mac),
        ip6_ula=_slaac(spec.ula_prefix, mac),
    )


def _first_mac(spec: RangeSpec) -> int:
    if spec.mac is None:
        raise ValueError("the range has no MAC: pass it through validate_range first")
    return _parse_mac(spec.mac, "ar.mac")


def _slaac(prefix: str | None, mac: int) -> str | None:
    if prefix is None:
        return None
    return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address(prefix)) | _interface_id(mac)))


def index_of(
    spec: RangeSpec, *, ip: str | None = None, mac: str | None = None, ip6: str | None = None
) -> int | None:
    """Return the index of the lease that has every given address, or None if no lease has.

    ``ip6`` matches a static IPv6 address or a SLAAC one (global or ULA). Raises ValueError
    when no address is given, InvalidInput when one is malformed.
    """
    found: list[int | None] = []
    if ip is not None:
        found.append(_ip4_index(spec, ip))
    if mac is not None:
        found.append(_within(spec, _parse_mac(mac, "mac") - _first_mac(spec)))
    if ip6 is not None:
        found.append(_ip6_index(spec, ip6))
    if not found:
        raise ValueError("index_of needs ip, mac or ip6")
    first = found[0]
    return first if all(index == first for index in found) else None


def _within(spec: RangeSpec, offset: int) -> int | None:
    return offset if 0 <= offset < spec.size else None


def _ip4_index(spec: RangeSpec, ip: str) -> int | None:
    value = _parse_ip4(ip, "ip")
    return None if spec.ip is None else _within(spec, value - int(ipaddress.IPv4Address(spec.ip)))


def _ip6_index(spec: RangeSpec, ip6: str) -> int | None:
    value = _parse_ip6(ip6, "ip6")
    if spec.ip6 is not None:
        return _within(spec, value - int(ipaddress.IPv6Address(spec.ip6)))
    for prefix in (spec.global_prefix, spec.ula_prefix):
        if prefix is not None and value >> 64 == int(ipaddress.IPv6Address(prefix)) >> 64:
            mac = _mac_of_interface_id(value & _LOW_64)
            return None if mac is None else _within(spec, mac - _first_mac(spec))
    return None


def first_free(used: Sequence[int], size: int) -> int | None:
    """Return the smallest index in 0..size-1 not in ``used`` (sorted, distinct), or None.

    O(1) when ``used`` is dense from 0, O(log len(used)) otherwise.
    """
    if not used or used[0] != 0:
        candidate = 0
    elif len(used) == used[-1] + 1:
        candidate = len(used)  # 0..n-1 all taken: the usual case of a range filled in order
    else:
        # used[i] - i never decreases, so the first i with used[i] > i (the first gap) bisects.
        candidate = bisect_left(range(len(used)), True, key=lambda i: used[i] > i)
    return candidate if candidate < size else None


# --- overlap ---------------------------------------------------------------------------------


def ranges_overlap(a: RangeSpec, b: RangeSpec) -> str | None:
    """Return why two validated ranges of one vnet clash, or None when they share no address.

    Compares IPv4 addresses, IPv6 addresses (static ones and SLAAC ones, so a static range
    covering another range's SLAAC address clashes too) and MACs.
    """
    if _meet(_ip4_intervals(a), _ip4_intervals(b)):
        return "IPv4 addresses overlap"
    if _meet(_ip6_intervals(a), _ip6_intervals(b)):
        return "IPv6 addresses overlap"
    if _meet(_mac_intervals(a), _mac_intervals(b)):
        return "MAC addresses overlap"
    return None


def _meet(xs: list[_Interval], ys: list[_Interval]) -> bool:
    return any(x0 <= y1 and y0 <= x1 for x0, x1 in xs for y0, y1 in ys)


def _run(first: int, size: int) -> _Interval:
    return (first, first + size - 1)


def _ip4_intervals(spec: RangeSpec) -> list[_Interval]:
    return [] if spec.ip is None else [_run(int(ipaddress.IPv4Address(spec.ip)), spec.size)]


def _mac_intervals(spec: RangeSpec) -> list[_Interval]:
    return [_run(_first_mac(spec), spec.size)]


def _ip6_intervals(spec: RangeSpec) -> list[_Interval]:
    runs = [] if spec.ip6 is None else [_run(int(ipaddress.IPv6Address(spec.ip6)), spec.size)]
    first_mac, last_mac = _mac_intervals(spec)[0]
    for prefix in (spec.global_prefix, spec.ula_prefix):
        if prefix is None:
            continue
        network = int(ipaddress.IPv6Address(prefix))
        # Within MACs sharing their first three octets the interface id grows with the MAC,
        # so each such piece of the MAC run maps onto one run of SLAAC addresses.
        for low, high in _split_at_oui(first_mac, last_mac):
            runs.append((network | _interface_id(low), network | _interface_id(high)))
    return runs


def _split_at_oui(first: int, last: int) -> list[_Interval]:
    pieces = []
    while first <= last:
        end = min(last, first | _LOW_24)
        pieces.append((first, end))
        first = end + 1
    return pieces
