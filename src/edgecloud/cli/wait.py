"""Waiting for a VM to reach a state, following the event stream, with a live status line."""

from __future__ import annotations

from collections.abc import Collection

import typer
from rich.console import Console

from edgecloud.api.states import LCM_STATES, state_label
from edgecloud.api.workload import Vm
from edgecloud.cli.output import fail
from edgecloud.client.resources import Vms

FAILURE_HINT = "_FAILURE"


def normalise(states: str) -> set[str]:
    """Turn 'RUNNING,POWEROFF' into {'ACTIVE/RUNNING', 'POWEROFF'}: LCM names get ACTIVE/."""
    out = set()
    for raw in states.upper().replace(" ", "").split(","):
        if not raw:
            continue
        out.add(f"ACTIVE/{raw}" if raw in LCM_STATES.values() and "/" not in raw else raw)
    if not out:
        raise typer.BadParameter("give at least one state, e.g. RUNNING or POWEROFF")
    return out


def wait_for(vms: Vms, vm_id: int, states: Collection[str], *, timeout: float, quiet: bool) -> Vm:
    """Wait until the VM is in one of `states`; stop early (exit 1) on a failure state."""
    console = Console(stderr=True)
    stops = set(states)

    def failed(vm: Vm) -> bool:
        return FAILURE_HINT in state_label(vm.state, vm.lcm_state) and not (
            stops & {state_label(vm.state, vm.lcm_state)}
        )

    with console.status(
        f"VM {vm_id}: waiting for {', '.join(sorted(stops))}", spinner="dots"
    ) as status:

        def show(vm: Vm) -> None:
            label = state_label(vm.state, vm.lcm_state)
            if not quiet:
                status.update(f"VM {vm_id}: {label}" + (f" ({vm.error})" if vm.error else ""))
            if failed(vm):
                raise _Failed(vm)

        try:
            return vms.wait(vm_id, stops | _failure_states(), timeout=timeout, on_change=show)
        except _Failed as exc:
            fail(f"VM {vm_id} is {state_label(exc.vm.state, exc.vm.lcm_state)}: {exc.vm.error}", 1)
        except TimeoutError as exc:
            fail(str(exc), 1)


def _failure_states() -> set[str]:
    return {f"ACTIVE/{n}" for n in LCM_STATES.values() if n.endswith(FAILURE_HINT)}


class _Failed(Exception):
    def __init__(self, vm: Vm) -> None:
        super().__init__(vm.error)
        self.vm = vm
