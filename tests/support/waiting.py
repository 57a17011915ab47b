"""Waiting for the cloud to reach a state, with a deadline and a useful failure message."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from edgecloud.api.states import state_label
from edgecloud.api.workload import VmShort
from edgecloud.client import Client


def label(vm: VmShort) -> str:
    """Return 'ACTIVE/RUNNING', 'POWEROFF', ... for a VM."""
    return state_label(vm.state, vm.lcm_state)


def wait_vms(
    client: Client,
    vm_ids: Iterable[int],
    done: Callable[[str], bool],
    *,
    timeout: float = 60.0,
) -> dict[int, str]:
    """Poll until every VM's state label satisfies `done`; return the labels."""
    wanted = set(vm_ids)
    deadline = time.monotonic() + timeout
    states: dict[int, str] = {}
    while True:
        states = {vm.id: label(vm) for vm in _all_short(client) if vm.id in wanted}
        if len(states) == len(wanted) and all(done(s) for s in states.values()):
            return states
        if time.monotonic() > deadline:
            stuck = {i: s for i, s in states.items() if not done(s)}
            raise AssertionError(
                f"VMs not there after {timeout}s: {dict(list(stuck.items())[:10])}"
            )
        time.sleep(0.1)


def _all_short(client: Client) -> list[VmShort]:
    out: list[VmShort] = []
    cursor = None
    while True:
        items, cursor = client.vms.page_short(limit=10_000, cursor=cursor, include_done=True)
        out.extend(items)
        if cursor is None:
            return out


def wait_operation(client: Client, op_id: int, *, timeout: float = 60.0) -> str:
    """Poll an operation until it ends; return its final state."""
    deadline = time.monotonic() + timeout
    while True:
        state = client.operations.get(op_id).state
        if state not in ("pending", "running"):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"operation {op_id} still {state} after {timeout}s")
        time.sleep(0.05)
