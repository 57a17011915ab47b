"""The quota commands users and groups share: `quota ID` and `set-quota ID`."""

from typing import Annotated

import typer

from edgecloud.api.identity import Quota
from edgecloud.cli.nouns import Noun, ObjId
from edgecloud.cli.output import Format, mib, number, print_data, print_table

# field, label, how to show an amount
QUOTA_FIELDS = (
    ("vms", "VMS", str),
    ("cpu", "CPU", number),
    ("memory_mb", "MEMORY", mib),
    ("system_disk_mb", "SYSTEM DISK", mib),
    ("images", "IMAGES", str),
    ("leases", "LEASES", str),
)
Count = Annotated[int | None, typer.Option(min=0)]


def print_quota(fmt: Format, quota: Quota) -> None:
    """Print a quota: one row per resource with its usage and limit ('-': unlimited)."""
    if fmt is not Format.TABLE:
        print_data(fmt, quota)
        return
    rows = []
    for field, label, show in QUOTA_FIELDS:
        limit = getattr(quota.limits, field)
        rows.append(
            (label, show(getattr(quota.usage, field)), None if limit is None else show(limit))
        )
    print_table(("RESOURCE", "USED", "LIMIT"), rows)


def add_quota_commands(app: typer.Typer, noun: Noun) -> None:
    """Register `quota` and `set-quota` for users or groups."""

    def show_quota(ctx: typer.Context, obj_id: ObjId) -> None:
        state, resource = noun.of(ctx)
        print_quota(state.output, resource.quota(obj_id))

    def set_quota(
        ctx: typer.Context,
        obj_id: ObjId,
        vms: Annotated[int | None, typer.Option(min=0, help="Most VMs.")] = None,
        cpu: Annotated[float | None, typer.Option(min=0, help="Most CPU.")] = None,
        memory: Annotated[int | None, typer.Option(min=0, help="Most memory, MiB.")] = None,
        system_disk: Annotated[
            int | None, typer.Option(min=0, help="Most system disk, MiB.")
        ] = None,
        images: Annotated[int | None, typer.Option(min=0, help="Most images.")] = None,
        leases: Annotated[int | None, typer.Option(min=0, help="Most leases.")] = None,
    ) -> None:
        state, resource = noun.of(ctx)
        quota = resource.set_quota(
            obj_id,
            vms=vms,
            cpu=cpu,
            memory_mb=memory,
            system_disk_mb=system_disk,
            images=images,
            leases=leases,
        )
        print_quota(state.output, quota)

    app.command("quota", help=f"Show a {noun.name}'s quota: usage and limits.")(show_quota)
    app.command(
        "set-quota", help=f"Replace a {noun.name}'s limits (an option left out: unlimited)."
    )(set_quota)
