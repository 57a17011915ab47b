"""`edgecloud vnet`: virtual networks, their address ranges and leases."""

from typing import Annotated, Literal

import typer

from edgecloud.api.network import Lease, Vnet
from edgecloud.cli.nouns import (
    Noun,
    ObjId,
    TemplateFile,
    add_common,
    changes,
    created,
    noun_app,
    read_template,
    updated,
)
from edgecloud.cli.output import print_list, print_one, report
from edgecloud.cli.specs import RANGE_HELP, parse_range


def usage(vnet: Vnet) -> str:
    """Return 'used/size' over all of a vnet's address ranges."""
    used = sum(ar.used for ar in vnet.address_ranges)
    return f"{used}/{sum(ar.size for ar in vnet.address_ranges)}"


VNET = Noun(
    "vnet",
    lambda client: client.vnets,
    [
        ("ID", lambda v: v.id),
        ("NAME", lambda v: v.name),
        ("OWNER", lambda v: v.owner_id),
        ("DRIVER", lambda v: v.driver),
        ("BRIDGE", lambda v: v.bridge or None),
        ("VLAN", lambda v: v.vlan_id),
        ("CLUSTERS", lambda v: v.cluster_ids),
        ("LEASES", usage),
    ],
)
LEASE_COLUMNS = [
    ("ID", lambda lease: lease.id),
    ("AR", lambda lease: lease.ar_id),
    ("IP", lambda lease: lease.ip),
    ("IP6", lambda lease: lease.ip6_global or lease.ip6_ula or lease.ip6),
    ("MAC", lambda lease: lease.mac),
    ("STATE", lambda lease: lease.state),
    ("VM", lambda lease: lease.vm_id),
    ("OWNER", lambda lease: lease.owner_id),
]
app = noun_app("Virtual networks: address ranges, leases, groups.")
add_common(app, VNET)

Ranges = Annotated[list[str] | None, typer.Option("--ar", help=RANGE_HELP + " Repeatable.")]
Iface = Annotated[str | None, typer.Option(help="Interface name on the hosts.")]
Groups = Annotated[
    list[int] | None, typer.Option("--secgroup", min=0, help="Security group id (repeatable).")
]
Driver = Literal["bridge", "vlan", "vxlan", "evpn"]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Vnet name.")],
    driver: Annotated[Driver, typer.Option(help="How the vnet reaches the wire.")] = "bridge",
    bridge: Annotated[str, typer.Option(help="Bridge name on the hosts.")] = "",
    phydev: Annotated[str, typer.Option(help="Physical device for vlan/vxlan.")] = "",
    vlan_id: Annotated[int | None, typer.Option(min=1, help="VLAN id or VNI.")] = None,
    cluster: Annotated[
        list[int] | None, typer.Option("--cluster", min=0, help="Cluster id (repeatable).")
    ] = None,
    ar: Ranges = None,
    secgroup: Groups = None,
    file: TemplateFile = None,
) -> None:
    """Create a virtual network."""
    ranges = [parse_range(spec) for spec in ar or []]
    state, vnets = VNET.of(ctx)
    vnet = vnets.create(
        name=name,
        driver=driver,
        bridge=bridge,
        phydev=phydev,
        vlan_id=vlan_id,
        cluster_ids=cluster or None,
        address_ranges=ranges,
        security_groups=secgroup or None,
        template=read_template(file),
    )
    created(state, "vnet", vnet)


@app.command("update")
def update(
    ctx: typer.Context,
    obj_id: ObjId,
    bridge: Iface = None,
    phydev: Iface = None,
    secgroup: Groups = None,
    file: TemplateFile = None,
) -> None:
    """Change a vnet's bridge, device, security groups or attributes."""
    body = changes(
        bridge=bridge, phydev=phydev, security_groups=secgroup, template=read_template(file)
    )
    state, vnets = VNET.of(ctx)
    updated(state, "vnet", obj_id, vnets.update(obj_id, **body))


@app.command("add-ar")
def add_ar(
    ctx: typer.Context,
    obj_id: ObjId,
    ar: Annotated[str, typer.Option("--ar", help=RANGE_HELP)],
) -> None:
    """Add an address range to a vnet."""
    fields = parse_range(ar)
    state, vnets = VNET.of(ctx)
    report(state.output, vnets.add_range(obj_id, **fields), f"added a range to vnet {obj_id}")


@app.command("rm-ar")
def rm_ar(
    ctx: typer.Context,
    obj_id: ObjId,
    ar_id: Annotated[int, typer.Argument(metavar="AR_ID", min=0, help="Address range id.")],
) -> None:
    """Remove an address range that has no leases."""
    state, vnets = VNET.of(ctx)
    vnet = vnets.remove_range(obj_id, ar_id)
    report(state.output, vnet, f"removed range {ar_id} from vnet {obj_id}")


@app.command("reserve")
def reserve(
    ctx: typer.Context,
    obj_id: ObjId,
    size: Annotated[int, typer.Option(min=1, help="How many addresses.")],
    name: Annotated[str | None, typer.Option(help="Name of the new vnet.")] = None,
    ip: Annotated[str | None, typer.Option(help="First address of the block.")] = None,
    ar_id: Annotated[int | None, typer.Option("--ar", min=0, help="From this range.")] = None,
) -> None:
    """Reserve a block of addresses: it becomes a vnet of your own."""
    state, vnets = VNET.of(ctx)
    vnet = vnets.reserve(obj_id, size=size, name=name, ip=ip, ar_id=ar_id)
    report(state.output, vnet, f"reserved {size} address(es) of vnet {obj_id} as vnet {vnet.id}")


@app.command("leases")
def leases(ctx: typer.Context, obj_id: ObjId) -> None:
    """List the addresses taken from a vnet."""
    state, vnets = VNET.of(ctx)
    print_list(state.output, vnets.leases(obj_id), LEASE_COLUMNS)


@app.command("lease")
def lease(
    ctx: typer.Context,
    obj_id: ObjId,
    ip: Annotated[str | None, typer.Option(help="This IPv4 address.")] = None,
    mac: Annotated[str | None, typer.Option(help="This MAC address.")] = None,
    ar_id: Annotated[int | None, typer.Option("--ar", min=0, help="From this range.")] = None,
    hold: Annotated[
        bool, typer.Option("--hold", help="Keep it aside instead of using it.")
    ] = False,
) -> None:
    """Take an address: a given one, or the first free one."""
    state, vnets = VNET.of(ctx)
    taken: Lease = vnets.take_lease(
        obj_id, ip=ip, mac=mac, ar_id=ar_id, state="hold" if hold else "used"
    )
    print_one(state.output, taken)


@app.command("release")
def release(
    ctx: typer.Context,
    obj_id: ObjId,
    lease_id: Annotated[
        int, typer.Argument(metavar="LEASE_ID", min=0, help="Lease id (see `vnet leases`).")
    ],
) -> None:
    """Give an address back."""
    state, vnets = VNET.of(ctx)
    vnets.release_lease(obj_id, lease_id)
    report(state.output, None, f"released lease {lease_id} of vnet {obj_id}")
