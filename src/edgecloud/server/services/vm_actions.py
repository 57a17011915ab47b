"""Which VM actions are valid in which state, and what each does at once.

Actions that need a host (boot, power off, migrate, ...) become operations that the
lifecycle engine carries out; actions that only change the record (hold, release,
terminating a VM that never left the queue) take effect here.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecloud.api.states import VM_STATE
from edgecloud.server.lifecycle import machine

S = VM_STATE
RUNNING = machine.RUNNING
# Where `recover` (and a terminate that cleans up) applies: failed steps, or an unknown guest.
FAILURES = machine.FAILURES | {machine.UNKNOWN}
QUEUED = frozenset({machine.PENDING, machine.HOLD})
RESTING = frozenset({machine.POWEROFF, machine.SUSPENDED, machine.STOPPED, machine.UNDEPLOYED})


@dataclass(frozen=True)
class ActionRule:
    """Where an action is allowed, and whether it runs on a host."""

    allowed: frozenset[tuple[int, int]]
    needs_host: bool = True
    admin: bool = False


RULES: dict[str, ActionRule] = {
    "deploy": ActionRule(QUEUED, admin=True),
    "hold": ActionRule(frozenset({(S["PENDING"], 0)}), needs_host=False),
    "release": ActionRule(frozenset({(S["HOLD"], 0)}), needs_host=False),
    "poweroff": ActionRule(frozenset({RUNNING})),
    "resume": ActionRule(RESTING),
    "reboot": ActionRule(frozenset({RUNNING})),
    "suspend": ActionRule(frozenset({RUNNING})),
    "stop": ActionRule(frozenset({RUNNING, (S["SUSPENDED"], 0)})),
    "undeploy": ActionRule(frozenset({RUNNING, (S["POWEROFF"], 0)})),
    "terminate": ActionRule(QUEUED | RESTING | FAILURES | {RUNNING}),
    "resched": ActionRule(frozenset({RUNNING, (S["POWEROFF"], 0)}), needs_host=False),
    "unresched": ActionRule(frozenset({RUNNING, (S["POWEROFF"], 0)}), needs_host=False),
    "migrate": ActionRule(
        frozenset({RUNNING, (S["POWEROFF"], 0), (S["SUSPENDED"], 0)}), admin=True
    ),
    "recover": ActionRule(FAILURES | {RUNNING}, admin=True),
}
