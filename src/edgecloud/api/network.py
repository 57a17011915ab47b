"""Wire types of virtual networks, address ranges, leases and security groups."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from edgecloud.api.common import Body, Id, Name, Ownership, TemplateIn, Wire

RangeType = Literal["IP4", "IP6", "IP6_STATIC", "IP4_6", "IP4_6_STATIC", "ETHER"]
Addr = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Iface = Annotated[str, StringConstraints(max_length=15, pattern=r"^[A-Za-z0-9_.\-]*$")]


class AddressRangeIn(Body):
    """An address range (OpenNebula AR): where leases come from."""

    type: RangeType = "IP4"
    size: int = Field(ge=1, le=16_777_216)
    ip: Addr | None = None
    mac: Addr | None = None
    global_prefix: Addr | None = None
    ula_prefix: Addr | None = None
    ip6: Addr | None = None
    prefix_length: int | None = Field(default=None, ge=1, le=128)


class AddressRange(Wire):
    """A stored address range and how many of its addresses are taken."""

    ar_id: int
    type: str
    size: int
    ip: str | None
    mac: str
    global_prefix: str | None
    ula_prefix: str | None
    ip6: str | None
    prefix_length: int | None
    used: int = 0


class VnetCreate(Body):
    """Create a virtual network."""

    name: Name
    driver: Literal["bridge", "vlan", "vxlan", "evpn"] = "bridge"
    bridge: Iface = ""
    phydev: Iface = ""
    vlan_id: int | None = Field(default=None, ge=1, le=16_777_215)
    cluster_ids: list[Id] = Field(default_factory=lambda: [0], max_length=1024)
    address_ranges: list[AddressRangeIn] = Field(default_factory=list, max_length=256)
    security_groups: list[Id] = Field(default_factory=lambda: [0], max_length=64)
    template: TemplateIn = Field(default_factory=dict)


class VnetUpdate(Body):
    """Change a vnet's attributes or security groups."""

    bridge: Iface | None = None
    phydev: Iface | None = None
    security_groups: list[Id] | None = Field(default=None, max_length=64)
    template: TemplateIn | None = None
    version: int | None = None


class Vnet(Ownership):
    """A virtual network with its ranges."""

    driver: str
    bridge: str
    phydev: str
    vlan_id: int | None
    security_groups: list[int]
    cluster_ids: list[int] = Field(default_factory=list)
    address_ranges: list[AddressRange] = Field(default_factory=list)


class LeaseRequest(Body):
    """Take an address: a given one (ip or mac) or the first free one, optionally from an AR."""

    ar_id: int | None = Field(default=None, ge=0, le=2**31 - 1)
    ip: Addr | None = None
    mac: Addr | None = None
    state: Literal["used", "hold"] = Field(
        default="used", description="used: allocated to the caller; hold: kept aside"
    )


class Lease(Wire):
    """A taken address."""

    id: int
    vnet_id: int
    ar_id: int
    mac: str
    ip: str | None
    ip6: str | None
    ip6_global: str | None
    ip6_ula: str | None
    state: str
    vm_id: int | None
    owner_id: int


PortRange = Annotated[str, StringConstraints(max_length=256, pattern=r"^[0-9,: ]*$")]


class SecurityRule(Body):
    """One firewall rule; no cidr and no security_group_id means any address."""

    protocol: Literal["TCP", "UDP", "ICMP", "ICMPv6", "IPSEC", "ALL"] = "ALL"
    direction: Literal["inbound", "outbound"] = "inbound"
    range: PortRange | None = Field(default=None, description="e.g. '22,80:90'")
    cidr: Addr | None = None
    security_group_id: Id | None = None
    icmp_type: int | None = Field(default=None, ge=0, le=255)


class SecurityGroupCreate(Body):
    """Create a security group."""

    name: Name
    rules: list[SecurityRule] = Field(default_factory=list, max_length=1024)
    template: TemplateIn = Field(default_factory=dict)


class SecurityGroupUpdate(Body):
    """Replace the rules or attributes of a security group."""

    rules: list[SecurityRule] | None = Field(default=None, max_length=1024)
    template: TemplateIn | None = None
    version: int | None = None


class SecurityGroup(Ownership):
    """A security group with its rules."""

    rules: list[SecurityRule]


class ReserveRequest(Body):
    """Reserve addresses of a vnet for yourself: they become a new vnet of yours."""

    size: int = Field(ge=1, le=65_536)
    name: Name | None = Field(default=None, description="default: <vnet>-reservation-<n>")
    ar_id: int | None = Field(default=None, ge=0, le=2**31 - 1)
    ip: Addr | None = Field(default=None, description="first address of the reservation")
