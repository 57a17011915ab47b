"""`edgecloud vm`: create VMs, list and show them, and drive their lifecycle."""

import time
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from edgecloud.api.states import VM_STATE, lcm_state_name, vm_state_name
from edgecloud.api.workload import HistoryRecord, VmActionAccepted, VmShort
from edgecloud.cli.nouns import (
    NameFilter,
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
from edgecloud.cli.output import fail, mib, number, print_list, report, when
from edgecloud.cli.wait import normalise, wait_for
from edgecloud.client.resources import Vms

PAGE_SIZE = 1000
ACTIVE = VM_STATE["ACTIVE"]


def vm_state(state: int, lcm_state: int) -> str:
    """Name a VM's state like OpenNebula: ACTIVE/<LCM state>, else the STATE name."""
    if state == ACTIVE:
        return f"{vm_state_name(state)}/{lcm_state_name(lcm_state)}"
    return vm_state_name(state)


VM = Noun(
    "vm",
    lambda client: client.vms,
    [
        ("ID", lambda v: v.id),
        ("NAME", lambda v: v.name),
        ("OWNER", lambda v: v.owner_id),
        ("STATE", lambda v: vm_state(v.state, v.lcm_state)),
        ("HOST", lambda v: v.host_id),
        ("CPU", lambda v: number(v.cpu)),
        ("MEMORY", lambda v: mib(v.memory_mb)),
    ],
)
HISTORY_COLUMNS = [
    ("TIME", lambda r: when(r.at)),
    ("ACTION", lambda r: r.action),
    ("USER", lambda r: r.user_id),
    ("HOST", lambda r: r.host_id),
    ("STATE", lambda r: vm_state(r.state, r.lcm_state)),
    ("DETAIL", lambda r: r.detail),
]
# action -> (help, takes --hard)
ACTIONS: dict[str, tuple[str, bool]] = {
    "poweroff": ("Power a running VM off (--hard: pull the plug).", True),
    "resume": ("Start a powered-off, suspended, stopped or undeployed VM again.", False),
    "reboot": ("Reboot a running VM (--hard: reset).", True),
    "suspend": ("Suspend a running VM, keeping its memory on the host.", False),
    "stop": ("Stop a VM, saving its state off the host.", False),
    "undeploy": ("Power a VM off and take its disks off the host.", True),
    "terminate": ("End a VM and free everything it holds.", True),
    "hold": ("Keep a pending VM from being scheduled.", False),
    "release": ("Let a held VM be scheduled.", False),
    "resched": ("Ask the scheduler to move a VM to a better host.", False),
    "unresched": ("Cancel a resched.", False),
}
RECOVERIES = ("success", "failure", "retry", "delete", "recreate")

app = noun_app("Virtual machines and containers.")
add_common(app, VM, ("show", "delete", "chmod", "chown"))
HostId = Annotated[int, typer.Argument(metavar="HOST_ID", min=0, help="Target host id.")]


def parse_state(text: str | None) -> int | None:
    """Turn a --state value (a STATE name or number) into its number."""
    if text is None or text.isdigit():
        return None if text is None else int(text)
    number = VM_STATE.get(text.upper())
    if number is None:
        names = ", ".join(VM_STATE)
        raise typer.BadParameter(f"unknown state {text!r}; one of {names}", param_hint="--state")
    return number


def short_pages(vms: Vms, **filters: Any) -> Iterator[VmShort]:
    """Yield the short form of every VM matching the filters, one page at a time."""
    cursor = None
    while True:
        items, cursor = vms.page_short(limit=PAGE_SIZE, cursor=cursor, **filters)
        yield from items
        if cursor is None:
            return


@app.command("list")
def list_vms(
    ctx: typer.Context,
    name: NameFilter = None,
    state: Annotated[str | None, typer.Option(help="Only this STATE (name or number).")] = None,
    host: Annotated[int | None, typer.Option(min=0, help="Only VMs on this host.")] = None,
    cluster: Annotated[int | None, typer.Option(min=0, help="Only VMs in this cluster.")] = None,
    include_done: Annotated[bool, typer.Option("--all", "-a", help="Include DONE VMs.")] = False,
) -> None:
    """List VMs (short form; DONE VMs only with --all)."""
    filters = {
        "name": name,
        "state": parse_state(state),
        "host_id": host,
        "cluster_id": cluster,
        "include_done": include_done or None,
    }
    cli, vms = VM.of(ctx)
    print_list(cli.output, list(short_pages(vms, **filters)), VM.columns)


@app.command("create")
def create(
    ctx: typer.Context,
    file: TemplateFile = None,
    template_id: Annotated[
        int | None, typer.Option("--template-id", min=0, help="Start from this template.")
    ] = None,
    template_name: Annotated[
        str | None,
        typer.Option("--template", help="Start from the stored template of this name."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="VM name.")] = None,
    hold: Annotated[
        bool, typer.Option("--hold", help="Keep the VM on hold (not scheduled).")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until it runs (or fails), showing its state.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 600.0,
) -> None:
    """Create a VM from a template file, or from a stored template (--file then overrides)."""
    if file is None and template_id is None and template_name is None:
        raise typer.BadParameter("give --file, --template, --template-id, or a mix")
    template = read_template(file)
    state, vms = VM.of(ctx)
    if template_name is not None:
        if template_id is not None:
            raise typer.BadParameter("give --template or --template-id, not both")
        found = [
            t for t in state.client.templates.list(name=template_name) if t.name == template_name
        ]
        if not found:
            raise typer.BadParameter(f"no template named '{template_name}' that you may use")
        template_id = found[0].id
    vm = vms.create(name=name, template_id=template_id, hold=hold or None, template=template)
    if wait and not hold:
        vm = wait_for(vms, vm.id, {"ACTIVE/RUNNING"}, timeout=timeout, quiet=False)
    created(state, "vm", vm)


@app.command("wait")
def wait_command(
    ctx: typer.Context,
    obj_id: ObjId,
    state_names: Annotated[
        str, typer.Option("--state", help="State(s) to wait for, e.g. RUNNING or POWEROFF,DONE.")
    ] = "RUNNING",
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 600.0,
) -> None:
    """Wait until a VM reaches a state (follows the event stream; no polling)."""
    state, vms = VM.of(ctx)
    vm = wait_for(vms, obj_id, normalise(state_names), timeout=timeout, quiet=False)
    report(state.output, vm, f"vm {obj_id}: {vm_state(vm.state, vm.lcm_state)}")


@app.command("update")
def update(
    ctx: typer.Context,
    obj_id: ObjId,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    file: TemplateFile = None,
) -> None:
    """Rename a VM or replace its user attributes (--file)."""
    body = changes(name=name, user_template=read_template(file))
    state, vms = VM.of(ctx)
    updated(state, "vm", obj_id, vms.update(obj_id, **body))


@app.command("rename")
def rename(
    ctx: typer.Context,
    obj_id: ObjId,
    name: Annotated[str, typer.Argument(metavar="NAME", help="New name.")],
) -> None:
    """Rename a VM."""
    state, vms = VM.of(ctx)
    report(state.output, vms.update(obj_id, name=name), f"vm {obj_id}: renamed to {name}")


def _secgroup(verb: str, attach: bool) -> None:
    def command(
        ctx: typer.Context,
        obj_id: ObjId,
        nic_id: Annotated[int, typer.Argument(metavar="NIC_ID", min=0, help="The NIC.")],
        group_id: Annotated[int, typer.Argument(metavar="SG_ID", min=0, help="Security group.")],
    ) -> None:
        state, vms = VM.of(ctx)
        call = vms.attach_secgroup if attach else vms.detach_secgroup
        vm = call(obj_id, nic_id, group_id)
        report(state.output, vm, f"vm {obj_id} NIC {nic_id}: security group {group_id} {verb}ed")

    text = "Attach a security group to a NIC." if attach else "Detach a security group."
    app.command(f"secgroup-{verb}", help=text)(command)


_secgroup("attach", True)
_secgroup("detach", False)


NicTimeout = Annotated[float, typer.Option(help="Seconds --wait waits at most.")]
NicWait = Annotated[
    bool, typer.Option("--wait", help="Wait until a running VM's hotplug is done (or failed).")
]


def _nic_done(
    ctx: typer.Context, accepted: VmActionAccepted, message: str, wait: bool, timeout: float
) -> None:
    """Report a NIC change; with --wait, once its hotplug operation has ended."""
    state, vms = VM.of(ctx)
    op = accepted.operation
    if op is not None:
        message += f" (operation {op.id})"
        if wait:
            deadline = time.monotonic() + timeout
            while op.state in ("pending", "running"):
                if time.monotonic() > deadline:
                    fail(f"operation {op.id} is still {op.state} after {timeout:g}s", 1)
                time.sleep(0.2)
                op = state.client.operations.get(op.id)
            if op.state != "done":
                fail(f"vm {accepted.vm.id}: operation {op.id} {op.state}: {op.error}", 1)
            accepted = VmActionAccepted(vm=vms.get(accepted.vm.id), operation=op)
    report(state.output, accepted, message)


@app.command("nic-attach")
def nic_attach(
    ctx: typer.Context,
    obj_id: ObjId,
    network: Annotated[str, typer.Option("--network", help="The vnet: its name or id.")],
    ip: Annotated[str | None, typer.Option(help="Lease this address.")] = None,
    mac: Annotated[str | None, typer.Option(help="Lease this MAC address.")] = None,
    secgroup: Annotated[
        list[int] | None, typer.Option("--secgroup", help="Security group (repeatable).")
    ] = None,
    wait: NicWait = False,
    timeout: NicTimeout = 120.0,
) -> None:
    """Attach a NIC to a VM: hot-plugged when it runs, else recorded for its next start."""
    _, vms = VM.of(ctx)
    vnet: dict[str, Any] = (
        {"network_id": int(network)} if network.isdigit() else {"network": network}
    )
    accepted = vms.attach_nic(obj_id, ip=ip, mac=mac, security_groups=secgroup or None, **vnet)
    nic = accepted.vm.nics[-1]
    where = nic.ip or nic.mac
    _nic_done(ctx, accepted, f"vm {obj_id}: NIC {nic.nic_id} attached ({where})", wait, timeout)


@app.command("nic-detach")
def nic_detach(
    ctx: typer.Context,
    obj_id: ObjId,
    nic_id: Annotated[int, typer.Argument(metavar="NIC_ID", min=0, help="The NIC.")],
    wait: NicWait = False,
    timeout: NicTimeout = 120.0,
) -> None:
    """Detach a NIC from a VM (unplugged when it runs) and give its address back."""
    _, vms = VM.of(ctx)
    accepted = vms.detach_nic(obj_id, nic_id)
    _nic_done(ctx, accepted, f"vm {obj_id}: NIC {nic_id} detached", wait, timeout)


@app.command("console-log")
def console_log(
    ctx: typer.Context,
    obj_id: ObjId,
    tail: Annotated[int, typer.Option(min=1, help="Bytes from the end.")] = 65536,
) -> None:
    """Print the tail of the guest's console (serial console of a VM, container console)."""
    _, vms = VM.of(ctx)
    typer.echo(vms.console_log(obj_id, tail_bytes=tail), nl=False)


@app.command("history")
def history(ctx: typer.Context, obj_id: ObjId) -> None:
    """Show what happened to a VM."""
    state, vms = VM.of(ctx)
    records: list[HistoryRecord] = vms.history(obj_id)
    print_list(state.output, records, HISTORY_COLUMNS)


def act(ctx: typer.Context, obj_id: int, action: str, **options: Any) -> None:
    """Request a lifecycle action and report where the VM is now."""
    state, vms = VM.of(ctx)
    accepted: VmActionAccepted = vms.action(obj_id, action, **options)
    vm = accepted.vm
    message = f"vm {obj_id}: {action} accepted, now {vm_state(vm.state, vm.lcm_state)}"
    if accepted.operation is not None:
        message += f" (operation {accepted.operation.id})"
    report(state.output, accepted, message)


def _add_action(action: str, text: str, hard: bool) -> None:
    if hard:

        def with_hard(
            ctx: typer.Context,
            obj_id: ObjId,
            force: Annotated[bool, typer.Option("--hard", help="Do it without the guest.")] = False,
        ) -> None:
            act(ctx, obj_id, action, hard=force or None)

        app.command(action, help=text)(with_hard)
        return

    def plain(ctx: typer.Context, obj_id: ObjId) -> None:
        act(ctx, obj_id, action)

    app.command(action, help=text)(plain)


for _action, (_text, _hard) in ACTIONS.items():
    _add_action(_action, _text, _hard)


@app.command("deploy")
def deploy(ctx: typer.Context, obj_id: ObjId, host_id: HostId) -> None:
    """Deploy a pending or held VM on a host (admins)."""
    act(ctx, obj_id, "deploy", host_id=host_id)


@app.command("migrate")
def migrate(
    ctx: typer.Context,
    obj_id: ObjId,
    host_id: HostId,
    live: Annotated[bool, typer.Option("--live", help="Move it while it runs.")] = False,
) -> None:
    """Move a VM to another host."""
    act(ctx, obj_id, "migrate", host_id=host_id, live=live or None)


@app.command("recover")
def recover(
    ctx: typer.Context,
    obj_id: ObjId,
    success: Annotated[bool, typer.Option("--success", help="The last step worked.")] = False,
    failure: Annotated[bool, typer.Option("--failure", help="The last step failed.")] = False,
    retry: Annotated[bool, typer.Option("--retry", help="Run the last step again.")] = False,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the VM.")] = False,
    recreate: Annotated[bool, typer.Option("--recreate", help="Start it over.")] = False,
) -> None:
    """Recover a VM stuck in a failure or UNKNOWN state."""
    given = dict(zip(RECOVERIES, (success, failure, retry, delete, recreate), strict=True))
    chosen = [how for how, on in given.items() if on]
    if len(chosen) != 1:
        raise typer.BadParameter(
            "give exactly one of --success, --failure, --retry, --delete, --recreate"
        )
    act(ctx, obj_id, "recover", recover=chosen[0])
