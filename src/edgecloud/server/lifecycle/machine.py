"""The VM state machine: for an action in a state, the steps it runs and where it ends.

States are OpenNebula's (STATE, LCM_STATE) pairs. An action valid in a state becomes an
operation whose steps are driver actions; while a step runs the VM shows that step's
LCM state (BOOT, SHUTDOWN_POWEROFF, SAVE_STOP, EPILOG, ...); if a step fails, the steps
done before it are undone in reverse and the VM rests in the step's failure state with
the error kept; on success the VM reaches the plan's final state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgecloud.api.states import LCM_STATE as L
from edgecloud.api.states import VM_STATE as S

State = tuple[int, int]
ACTIVE = S["ACTIVE"]
RUNNING: State = (ACTIVE, L["RUNNING"])
POWEROFF: State = (S["POWEROFF"], 0)
SUSPENDED: State = (S["SUSPENDED"], 0)
STOPPED: State = (S["STOPPED"], 0)
UNDEPLOYED: State = (S["UNDEPLOYED"], 0)
PENDING: State = (S["PENDING"], 0)
HOLD: State = (S["HOLD"], 0)
DONE: State = (S["DONE"], 0)
UNKNOWN: State = (ACTIVE, L["UNKNOWN"])


def active(lcm: str) -> State:
    """Return (ACTIVE, lcm)."""
    return (ACTIVE, L[lcm])


# Every OpenNebula LCM state a failed step can leave a VM in (BOOT_FAILURE, EPILOG_FAILURE, ...).
FAILURES: frozenset[State] = frozenset(active(n) for n in L if n.endswith("_FAILURE"))

# Steps that leave something on a host, and the step that removes it again. A failed
# boot keeps the guest's disks (a powered-off VM's data); a failed prolog removes them.
UNDO = {
    "prolog": "cleanup",
    "save": "restore",
    "move": "cleanup_target",
    "deploy": "cleanup_guest",
    "restore_target": "cleanup_target",
    "nic_attach": "nic_detach",
    "disk_attach": "disk_detach",
}


@dataclass(frozen=True)
class Step:
    """One driver action of a plan, the LCM state shown while it runs, where a failure rests."""

    action: str
    lcm: int
    fail_to: State


@dataclass(frozen=True)
class Plan:
    """What an operation does to a VM."""

    steps: tuple[Step, ...]
    done: State
    releases_host: bool = False  # the VM leaves its host on success (capacity given back)
    moves_host: bool = False  # the VM ends on params["host_id"] (migration)
    best_effort: bool = False  # a failing step is recorded and skipped (recover delete/recreate)

    def to_params(self) -> dict[str, Any]:
        """Serialise for the operation row, so a resumed operation follows the same plan."""
        return {
            "steps": [[s.action, s.lcm, list(s.fail_to)] for s in self.steps],
            "done": list(self.done),
            "releases_host": self.releases_host,
            "moves_host": self.moves_host,
            "best_effort": self.best_effort,
        }

    @classmethod
    def from_params(cls, data: dict[str, Any]) -> Plan:
        """Read a plan back from an operation row."""
        return cls(
            steps=tuple(Step(a, lcm, (f[0], f[1])) for a, lcm, f in data["steps"]),
            done=(data["done"][0], data["done"][1]),
            releases_host=data["releases_host"],
            moves_host=data["moves_host"],
            best_effort=data.get("best_effort", False),
        )


def _boot(resume_from: str) -> Step:
    if resume_from == "stopped":
        return Step("restore", L["BOOT_STOPPED"], active("BOOT_STOPPED_FAILURE"))
    if resume_from == "undeployed":
        return Step("deploy", L["BOOT_UNDEPLOY"], active("BOOT_UNDEPLOY_FAILURE"))
    return Step("deploy", L["BOOT"], active("BOOT_FAILURE"))


def cleanup_step(fail: str = "EPILOG_FAILURE", lcm: str = "EPILOG") -> Step:
    """Return the step that removes a guest from its host."""
    return Step("cleanup", L[lcm], active(fail))


def epilog_step(fail: str = "EPILOG_FAILURE", lcm: str = "EPILOG") -> Step:
    """Return the step that copies persistent disks back to their datastore."""
    return Step("epilog", L[lcm], active(fail))


def _prolog(resume_from: str) -> Step:
    if resume_from == "undeployed":
        return Step("prolog", L["PROLOG_UNDEPLOY"], active("PROLOG_UNDEPLOY_FAILURE"))
    return Step("prolog", L["PROLOG"], active("PROLOG_FAILURE"))


def plan_for(
    action: str, current: State, *, hard: bool = False, live: bool = False, resume_from: str = ""
) -> Plan | None:
    """Return the plan of `action` in state `current`, or None if it needs no host work."""
    del hard  # hard/soft changes how a driver acts, not the steps
    if action == "deploy":
        if resume_from == "stopped":
            return Plan((_boot(resume_from),), RUNNING)
        return Plan((_prolog(resume_from), _boot(resume_from)), RUNNING)
    if action == "poweroff":
        return Plan((Step("shutdown", L["SHUTDOWN_POWEROFF"], RUNNING),), POWEROFF)
    if action == "reboot":
        return Plan((Step("reboot", L["RUNNING"], RUNNING),), RUNNING)
    if action == "suspend":
        return Plan((Step("save", L["SAVE_SUSPEND"], RUNNING),), SUSPENDED)
    if action == "resume":
        return _resume(current)
    if action == "stop":
        return _stop(current)
    if action == "undeploy":
        return _undeploy(current)
    if action == "terminate":
        return _terminate(current)
    if action == "migrate":
        return _migrate(current, live=live)
    if action in ("attach_nic", "detach_nic") and current == RUNNING:
        step = "nic_attach" if action == "attach_nic" else "nic_detach"
        return Plan((Step(step, L["HOTPLUG_NIC"], RUNNING),), RUNNING)
    return None  # a NIC of a VM that does not run is only recorded


def _resume(current: State) -> Plan | None:
    if current == POWEROFF:
        return Plan((Step("deploy", L["BOOT_POWEROFF"], POWEROFF),), RUNNING)
    if current == SUSPENDED:
        return Plan((Step("restore", L["BOOT_SUSPENDED"], SUSPENDED),), RUNNING)
    return None  # STOPPED / UNDEPLOYED go back to PENDING and are placed again


def _stop(current: State) -> Plan:
    move_out = Step("move_out", L["EPILOG_STOP"], active("EPILOG_STOP_FAILURE"))
    if current == SUSPENDED:
        return Plan((move_out,), STOPPED, releases_host=True)
    save = Step("save", L["SAVE_STOP"], RUNNING)
    return Plan((save, move_out), STOPPED, releases_host=True)


def _undeploy(current: State) -> Plan:
    epilog = epilog_step("EPILOG_UNDEPLOY_FAILURE", "EPILOG_UNDEPLOY")
    cleanup = cleanup_step("EPILOG_UNDEPLOY_FAILURE", "EPILOG_UNDEPLOY")
    if current == POWEROFF:
        return Plan((epilog, cleanup), UNDEPLOYED, releases_host=True)
    shutdown = Step("shutdown", L["SHUTDOWN_UNDEPLOY"], RUNNING)
    return Plan((shutdown, epilog, cleanup), UNDEPLOYED, releases_host=True)


def _terminate(current: State) -> Plan | None:
    if current in (PENDING, HOLD, STOPPED, UNDEPLOYED):
        return None  # nothing runs on a host: the VM ends at once
    if current == RUNNING:
        shutdown = Step("shutdown", L["SHUTDOWN"], RUNNING)
        return Plan((shutdown, epilog_step(), cleanup_step()), DONE, releases_host=True)
    return Plan((epilog_step(), cleanup_step()), DONE, releases_host=True)


def _migrate(current: State, *, live: bool) -> Plan:
    """Cold: the guest's files move to the target (relayed by the front-end) and it starts
    there; the source is cleaned up last. A failure undoes what was done: the VM is back
    as it was on its source, and nothing of it stays on the target."""
    done_source = Step("cleanup_source", L["EPILOG"], RUNNING)
    if current == POWEROFF:
        move = Step("move", L["PROLOG_MIGRATE_POWEROFF"], POWEROFF)
        cleanup = Step("cleanup_source", L["PROLOG_MIGRATE_POWEROFF"], POWEROFF)
        return Plan((move, cleanup), POWEROFF, moves_host=True)
    if current == SUSPENDED:
        move = Step("move", L["PROLOG_MIGRATE_SUSPEND"], SUSPENDED)
        cleanup = Step("cleanup_source", L["PROLOG_MIGRATE_SUSPEND"], SUSPENDED)
        return Plan((move, cleanup), SUSPENDED, moves_host=True)
    if live:
        return Plan((Step("migrate_live", L["MIGRATE"], RUNNING),), RUNNING, moves_host=True)
    steps = (
        Step("save", L["SAVE_MIGRATE"], RUNNING),
        Step("move", L["PROLOG_MIGRATE"], RUNNING),
        Step("restore_target", L["BOOT_MIGRATE"], RUNNING),
        done_source,
    )
    return Plan(steps, RUNNING, moves_host=True)
