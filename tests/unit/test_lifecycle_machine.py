"""Every VM transition: the steps and end state of each valid one, a 4xx for each refused one."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import pytest

from edgecloud.api.states import LCM_STATE as L
from edgecloud.api.states import VM_STATE as S
from edgecloud.api.workload import VmAction
from edgecloud.server.auth.access import Principal
from edgecloud.server.errors import Conflict
from edgecloud.server.lifecycle import machine as m
from edgecloud.server.services.vm_actions import RULES
from edgecloud.server.services.vm_lifecycle import request_action

pytestmark = pytest.mark.unit
ADMIN = Principal(user_id=0, name="admin", group_id=0, group_ids=frozenset({0}))

# (action, from state, options) -> ([(step, LCM while it runs, where a failure rests)], end state)
EXPECTED: list[tuple[str, m.State, dict[str, Any], list[tuple[str, str, m.State]], m.State]] = [
    (
        "deploy",
        m.PENDING,
        {},
        [
            ("prolog", "PROLOG", m.active("PROLOG_FAILURE")),
            ("deploy", "BOOT", m.active("BOOT_FAILURE")),
        ],
        m.RUNNING,
    ),
    (
        "deploy",
        m.PENDING,
        {"resume_from": "stopped"},
        [("restore", "BOOT_STOPPED", m.active("BOOT_STOPPED_FAILURE"))],
        m.RUNNING,
    ),
    (
        "deploy",
        m.PENDING,
        {"resume_from": "undeployed"},
        [
            ("prolog", "PROLOG_UNDEPLOY", m.active("PROLOG_UNDEPLOY_FAILURE")),
            ("deploy", "BOOT_UNDEPLOY", m.active("BOOT_UNDEPLOY_FAILURE")),
        ],
        m.RUNNING,
    ),
    ("poweroff", m.RUNNING, {}, [("shutdown", "SHUTDOWN_POWEROFF", m.RUNNING)], m.POWEROFF),
    ("resume", m.POWEROFF, {}, [("deploy", "BOOT_POWEROFF", m.POWEROFF)], m.RUNNING),
    ("resume", m.SUSPENDED, {}, [("restore", "BOOT_SUSPENDED", m.SUSPENDED)], m.RUNNING),
    ("reboot", m.RUNNING, {}, [("reboot", "RUNNING", m.RUNNING)], m.RUNNING),
    ("suspend", m.RUNNING, {}, [("save", "SAVE_SUSPEND", m.RUNNING)], m.SUSPENDED),
    (
        "stop",
        m.RUNNING,
        {},
        [
            ("save", "SAVE_STOP", m.RUNNING),
            ("move_out", "EPILOG_STOP", m.active("EPILOG_STOP_FAILURE")),
        ],
        m.STOPPED,
    ),
    (
        "stop",
        m.SUSPENDED,
        {},
        [("move_out", "EPILOG_STOP", m.active("EPILOG_STOP_FAILURE"))],
        m.STOPPED,
    ),
    (
        "undeploy",
        m.RUNNING,
        {},
        [
            ("shutdown", "SHUTDOWN_UNDEPLOY", m.RUNNING),
            ("epilog", "EPILOG_UNDEPLOY", m.active("EPILOG_UNDEPLOY_FAILURE")),
            ("cleanup", "EPILOG_UNDEPLOY", m.active("EPILOG_UNDEPLOY_FAILURE")),
        ],
        m.UNDEPLOYED,
    ),
    (
        "undeploy",
        m.POWEROFF,
        {},
        [
            ("epilog", "EPILOG_UNDEPLOY", m.active("EPILOG_UNDEPLOY_FAILURE")),
            ("cleanup", "EPILOG_UNDEPLOY", m.active("EPILOG_UNDEPLOY_FAILURE")),
        ],
        m.UNDEPLOYED,
    ),
    (
        "terminate",
        m.RUNNING,
        {},
        [
            ("shutdown", "SHUTDOWN", m.RUNNING),
            ("epilog", "EPILOG", m.active("EPILOG_FAILURE")),
            ("cleanup", "EPILOG", m.active("EPILOG_FAILURE")),
        ],
        m.DONE,
    ),
    (
        "terminate",
        m.POWEROFF,
        {},
        [
            ("epilog", "EPILOG", m.active("EPILOG_FAILURE")),
            ("cleanup", "EPILOG", m.active("EPILOG_FAILURE")),
        ],
        m.DONE,
    ),
    (
        "terminate",
        m.UNKNOWN,
        {},
        [
            ("epilog", "EPILOG", m.active("EPILOG_FAILURE")),
            ("cleanup", "EPILOG", m.active("EPILOG_FAILURE")),
        ],
        m.DONE,
    ),
    (
        "terminate",
        m.active("BOOT_FAILURE"),
        {},
        [
            ("epilog", "EPILOG", m.active("EPILOG_FAILURE")),
            ("cleanup", "EPILOG", m.active("EPILOG_FAILURE")),
        ],
        m.DONE,
    ),
    (
        "migrate",
        m.RUNNING,
        {},
        [
            ("save", "SAVE_MIGRATE", m.RUNNING),
            ("move", "PROLOG_MIGRATE", m.RUNNING),  # undone: restored on the source
            ("restore_target", "BOOT_MIGRATE", m.RUNNING),
            ("cleanup_source", "EPILOG", m.RUNNING),
        ],
        m.RUNNING,
    ),
    ("migrate", m.RUNNING, {"live": True}, [("migrate_live", "MIGRATE", m.RUNNING)], m.RUNNING),
    (
        "migrate",
        m.POWEROFF,
        {},
        [
            ("move", "PROLOG_MIGRATE_POWEROFF", m.POWEROFF),
            ("cleanup_source", "PROLOG_MIGRATE_POWEROFF", m.POWEROFF),
        ],
        m.POWEROFF,
    ),
    (
        "migrate",
        m.SUSPENDED,
        {},
        [
            ("move", "PROLOG_MIGRATE_SUSPEND", m.SUSPENDED),
            ("cleanup_source", "PROLOG_MIGRATE_SUSPEND", m.SUSPENDED),
        ],
        m.SUSPENDED,
    ),
]


@pytest.mark.parametrize(("action", "state", "options", "steps", "done"), EXPECTED)
def test_plan_for_each_valid_transition(
    action: str,
    state: m.State,
    options: dict[str, Any],
    steps: list[tuple[str, str, m.State]],
    done: m.State,
) -> None:
    plan = m.plan_for(action, state, **options)
    assert plan is not None
    assert [(s.action, s.lcm, s.fail_to) for s in plan.steps] == [
        (a, L[lcm], f) for a, lcm, f in steps
    ]
    assert plan.done == done
    assert plan.releases_host == (done in (m.DONE, m.STOPPED, m.UNDEPLOYED))
    assert plan.moves_host == (action == "migrate")
    assert m.Plan.from_params(plan.to_params()) == plan


@pytest.mark.parametrize(
    ("action", "step"), [("attach_nic", "nic_attach"), ("detach_nic", "nic_detach")]
)
def test_nic_hotplug_plans(action: str, step: str) -> None:
    plan = m.plan_for(action, m.RUNNING)
    assert plan is not None
    assert [(s.action, s.lcm, s.fail_to) for s in plan.steps] == [
        (step, L["HOTPLUG_NIC"], m.RUNNING)
    ]
    assert plan.done == m.RUNNING and not plan.releases_host
    for resting in (m.POWEROFF, m.PENDING, m.HOLD, m.UNDEPLOYED):
        assert m.plan_for(action, resting) is None  # only recorded: the next deploy plugs it
    assert m.UNDO["nic_attach"] == "nic_detach"


@pytest.mark.parametrize(
    ("action", "state"),
    [("terminate", s) for s in (m.PENDING, m.HOLD, m.STOPPED, m.UNDEPLOYED)]
    + [("resume", m.STOPPED), ("resume", m.UNDEPLOYED)],
)
def test_transitions_without_host_work_have_no_plan(action: str, state: m.State) -> None:
    assert m.plan_for(action, state) is None


def test_every_allowed_host_action_has_a_plan() -> None:
    immediate = {("terminate", s) for s in (m.PENDING, m.HOLD, m.STOPPED, m.UNDEPLOYED)} | {
        ("resume", m.STOPPED),
        ("resume", m.UNDEPLOYED),
    }
    for action, rule in RULES.items():
        if not rule.needs_host or action == "recover":
            continue
        for state in rule.allowed:
            if (action, state) not in immediate:
                assert m.plan_for(action, state) is not None, (action, state)


ALL_STATES = [
    (s, 0)
    for s in (
        S["PENDING"],
        S["HOLD"],
        S["POWEROFF"],
        S["SUSPENDED"],
        S["STOPPED"],
        S["UNDEPLOYED"],
        S["DONE"],
    )
] + [
    (S["ACTIVE"], L[n])
    for n in (
        "BOOT",
        "RUNNING",
        "UNKNOWN",
        "SHUTDOWN",
        "EPILOG",
        "BOOT_FAILURE",
        "EPILOG_FAILURE",
        "MIGRATE",
    )
]


@pytest.mark.parametrize(
    ("action", "state"),
    [(a, s) for a, s in itertools.product(RULES, ALL_STATES) if s not in RULES[a].allowed],
)
def test_refused_transitions_are_409_naming_the_state(action: str, state: m.State) -> None:
    row = SimpleNamespace(id=7, state=state[0], lcm_state=state[1])
    body = VmAction(action=action, host_id=1, recover="success")  # type: ignore[arg-type]
    with pytest.raises(Conflict) as err:
        request_action(None, ADMIN, row, body)  # type: ignore[arg-type]  # refused before any query
    label = (
        "ACTIVE/" + next(k for k, v in L.items() if v == state[1])
        if state[0] == S["ACTIVE"]
        else next(k for k, v in S.items() if v == state[0])
    )
    assert f"not valid in state {label}" in err.value.message
    assert err.value.field == "action"
