"""Unit tests for the scheduler stack: filters, policies, reasons, and plan properties."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecloud.server.scheduler import (
    POLICIES,
    ClusterView,
    HostView,
    Placement,
    Snapshot,
    VmDemand,
    parse_rank,
    parse_requirements,
    place,
    plan,
)
from edgecloud.server.scheduler.snapshot import host_attributes

pytestmark = pytest.mark.unit

MONITORED, INIT, ERROR, DISABLED, OFFLINE = 2, 0, 3, 4, 8


def host(host_id: int, **kwargs: Any) -> HostView:
    fields: dict[str, Any] = {
        "name": f"h{host_id}",
        "cluster_id": 0,
        "state": MONITORED,
        "hypervisor": "kvm",
        "total_cpu": 4.0,
        "total_memory_mb": 4096,
    }
    fields.update(kwargs)
    return HostView(host_id, **fields)


def vm(vm_id: int, cpu: float = 1.0, memory_mb: int = 512, **kwargs: Any) -> VmDemand:
    return VmDemand(vm_id, cpu, memory_mb, **kwargs)


def hosts_of(result_placements: Sequence[Placement]) -> list[int]:
    return [p.host_id for p in result_placements]


# --- snapshot -----------------------------------------------------------------------------


def test_snapshot_subtracts_cluster_reservation_from_free_capacity() -> None:
    snapshot = Snapshot(
        [host(1, used_cpu=1.0, used_memory_mb=1024)],
        {0: ClusterView(0, reserved_cpu=0.5, reserved_memory_mb=512)},
    )
    bound = snapshot.host(1)
    assert bound is not None
    assert (bound.max_cpu, bound.free_cpu) == (3.5, 2.5)
    assert (bound.max_memory_mb, bound.free_memory_mb) == (3584, 2560)
    assert list(snapshot.hosts_in(frozenset({0}))) == [bound]
    assert list(snapshot.hosts_in(frozenset({9}))) == []


def test_host_attributes_use_percent_cpu_and_mib() -> None:
    attrs = host_attributes(
        Snapshot(
            [host(1, used_cpu=1.5, used_memory_mb=1024, running_vms=2, attributes={"gpu": "y"})],
            {0: ClusterView(0, reserved_cpu=1.0, reserved_memory_mb=1024)},
        ).hosts[0]
    )
    assert attrs["MAX_CPU"] == 300
    assert attrs["TOTAL_CPU"] == 400
    assert attrs["USED_CPU"] == 150
    assert attrs["FREE_CPU"] == 150
    assert attrs["MAX_MEMORY"] == 3072
    assert attrs["FREE_MEMORY"] == 2048
    assert attrs["USED_MEMORY"] == 1024
    assert (attrs["RUNNING_VMS"], attrs["GPU"], attrs["ID"], attrs["NAME"]) == (2, "y", 1, "h1")
    assert "FREE_DISK" not in attrs


def test_host_attributes_computed_names_win_over_template() -> None:
    attrs = host_attributes(host(1, attributes={"FREE_CPU": "99999", "NAME": "fake"}))
    assert (attrs["FREE_CPU"], attrs["NAME"]) == (400, "h1")


# --- policies -----------------------------------------------------------------------------


def test_plan_packing_puts_second_vm_on_same_host() -> None:
    result = plan([vm(1), vm(2)], Snapshot([host(1), host(2)]), "packing")
    assert hosts_of(result.placements) == [1, 1]


def test_plan_striping_puts_second_vm_on_another_host() -> None:
    result = plan([vm(1), vm(2)], Snapshot([host(1), host(2)]), "striping")
    assert hosts_of(result.placements) == [1, 2]


def test_plan_packing_moves_on_when_the_busiest_host_is_full() -> None:
    result = plan([vm(i, cpu=2) for i in range(3)], Snapshot([host(1), host(2)]), "packing")
    assert hosts_of(result.placements) == [1, 1, 2]


def test_plan_packing_prefers_the_host_with_most_running_vms() -> None:
    snapshot = Snapshot([host(1, running_vms=1), host(2, running_vms=3)])
    assert hosts_of(plan([vm(1)], snapshot, "packing").placements) == [2]
    assert hosts_of(plan([vm(1)], snapshot, "striping").placements) == [1]


def test_plan_load_aware_prefers_most_free_cpu() -> None:
    snapshot = Snapshot([host(1, used_cpu=3.0), host(2, used_cpu=1.0), host(3, used_cpu=2.0)])
    result = plan([vm(1), vm(2), vm(3)], snapshot, "load-aware")
    assert hosts_of(result.placements) == [2, 2, 3]


def test_plan_fixed_uses_host_priority_then_sched_rank() -> None:
    snapshot = Snapshot(
        [host(1, attributes={"PRIORITY": "1"}), host(2, attributes={"PRIORITY": "5"}), host(3)]
    )
    assert hosts_of(plan([vm(1)], snapshot, "fixed").placements) == [2]
    ranked = vm(2, rank="-PRIORITY")
    assert hosts_of(plan([ranked], snapshot, "fixed").placements) == [3]


def test_plan_vm_sched_rank_overrides_policy() -> None:
    snapshot = Snapshot([host(1, used_cpu=3.0, running_vms=0), host(2, running_vms=5)])
    result = plan([vm(1, rank="FREE_CPU")], snapshot, "striping")
    assert hosts_of(result.placements) == [2]


def test_plan_breaks_ties_by_host_id() -> None:
    snapshot = Snapshot([host(9), host(3), host(5)])
    for policy in POLICIES:
        assert hosts_of(plan([vm(1)], snapshot, policy).placements) == [3]


def test_plan_refuses_unknown_policy() -> None:
    with pytest.raises(ValueError, match="unknown scheduling policy"):
        plan([vm(1)], Snapshot([host(1)]), "random")


# --- filters and reasons ------------------------------------------------------------------


def test_plan_never_overcommits_after_reservation() -> None:
    snapshot = Snapshot([host(1)], {0: ClusterView(0, reserved_cpu=1.0)})
    result = plan([vm(i) for i in range(4)], snapshot, "packing")
    assert hosts_of(result.placements) == [1, 1, 1]
    assert result.unplaced == {3: "no host has 1 free CPU"}


@pytest.mark.parametrize(
    ("hosts", "demand", "reason"),
    [
        (
            [host(1, state=DISABLED), host(2, state=ERROR)],
            {},
            "no host is in state INIT or MONITORED",
        ),
        (
            [host(1, cluster_id=1)],
            {"cluster_ids": frozenset({2, 3})},
            "no usable host in cluster 2, 3",
        ),
        ([host(1)], {"hypervisor": "lxc"}, "no usable host runs lxc"),
        ([host(1)], {"memory_mb": 5000}, "no host has 5000 MiB free memory"),
        ([host(1, free_disk_mb=10)], {"disk_mb": 20}, "no host has 20 MiB free disk"),
        (
            [host(1, total_cpu=1.0), host(2, total_memory_mb=256)],
            {"cpu": 2.0},
            "no host has 2 free CPU and 512 MiB free memory at once",
        ),
        ([host(1)], {"requirements": "GPU = yes"}, "no host matches SCHED_REQUIREMENTS"),
        ([host(1)], {"requirements": "FREE_CPU > 1000"}, "no host matches SCHED_REQUIREMENTS"),
        ([host(1)], {"requirements": "GPU ="}, "SCHED_REQUIREMENTS: column 6: expected a value"),
        ([host(1)], {"rank": "FREE_CPU +"}, "SCHED_RANK: column 11: expected a number"),
        ([host(1)], {"host_id": 5}, "host 5 is not known"),
        ([host(1, state=OFFLINE)], {"host_id": 1}, "host 1 is not in state INIT or MONITORED"),
        ([host(1)], {"host_id": 1, "cpu": 8.0}, "host 1 lacks 8 free CPU"),
        ([host(1)], {"host_id": 1, "requirements": "ID = 2"}, "host 1 does not match"),
    ],
)
def test_plan_says_why_a_vm_is_unplaced(
    hosts: list[HostView], demand: dict[str, Any], reason: str
) -> None:
    result = plan([vm(1, **demand)], Snapshot(hosts), "striping")
    assert result.placements == []
    assert result.unplaced[1].startswith(reason)


def test_plan_init_hosts_take_vms() -> None:
    assert hosts_of(plan([vm(1)], Snapshot([host(1, state=INIT)])).placements) == [1]


def test_plan_fake_hosts_run_every_kind() -> None:
    snapshot = Snapshot([host(1, hypervisor="fake"), host(2, hypervisor="kvm")])
    assert hosts_of(plan([vm(1, hypervisor="lxc")], snapshot).placements) == [1]
    assert hosts_of(plan([vm(1, hypervisor="fake")], snapshot).placements) == [1]


def test_plan_checks_disk_only_when_both_are_known() -> None:
    snapshot = Snapshot([host(1, free_disk_mb=None), host(2, free_disk_mb=100)])
    result = plan([vm(1, disk_mb=10**6), vm(2, disk_mb=100), vm(3, disk_mb=1)], snapshot)
    assert hosts_of(result.placements) == [1, 2, 1]


def test_plan_pinned_vm_goes_to_its_host_only() -> None:
    snapshot = Snapshot([host(1), host(2)])
    result = plan([vm(1, host_id=2), vm(2, host_id=2, cpu=4.0)], snapshot, "striping")
    assert hosts_of(result.placements) == [2]
    assert result.unplaced == {2: "host 2 lacks 4 free CPU"}


def test_plan_usage_requirement_sees_placements_of_the_same_plan() -> None:
    snapshot = Snapshot([host(1), host(2)])
    result = plan([vm(i, requirements="RUNNING_VMS < 1") for i in range(3)], snapshot, "packing")
    assert hosts_of(result.placements) == [1, 2]
    assert result.unplaced == {2: "no host matches SCHED_REQUIREMENTS"}


def test_plan_asks_seen_later_rank_hosts_with_earlier_placements() -> None:
    snapshot = Snapshot([host(1), host(2)])
    later = [vm(1), vm(2, cluster_ids=frozenset({0})), vm(3, requirements="ID > 0")]
    assert hosts_of(plan(later, snapshot, "packing").placements) == [1, 1, 1]
    assert hosts_of(plan(later, snapshot, "striping").placements) == [1, 2, 1]
    pinned_first = [vm(1, host_id=2), vm(2)]
    assert hosts_of(plan(pinned_first, snapshot, "packing").placements) == [2, 2]


def test_plan_later_smaller_vm_still_fits() -> None:
    result = plan([vm(1, cpu=3.0), vm(2, cpu=2.0), vm(3, cpu=1.0)], Snapshot([host(1)]))
    assert hosts_of(result.placements) == [1, 1]
    assert list(result.unplaced) == [2]


def test_place_returns_placement_or_none() -> None:
    snapshot = Snapshot([host(4, cluster_id=2)])
    assert place(vm(1), snapshot) == Placement(1, 4, 2)
    assert place(vm(1, cpu=5.0), snapshot) is None


# --- properties ---------------------------------------------------------------------------

REQUIREMENTS = [
    "",
    "GPU = yes",
    "FREE_CPU >= 100",
    "PRIORITY > 1 | LABELS @> ssd",
    "!(GPU = yes) & RUNNING_VMS < 3",
    "NAME = h1*",
    "FREE_MEMORY > 1000 & CLUSTER_ID != 1",
]
RANKS = ["", "PRIORITY", "FREE_CPU - RUNNING_VMS * 10", "-FREE_MEMORY / 256"]

host_views = st.builds(
    HostView,
    id=st.integers(0, 40),
    name=st.sampled_from(["h1", "h12", "h2", "web"]),
    cluster_id=st.integers(0, 3),
    state=st.sampled_from([MONITORED] * 5 + [INIT, ERROR, DISABLED, OFFLINE]),
    hypervisor=st.sampled_from(["kvm", "kvm", "lxc", "fake"]),
    total_cpu=st.sampled_from([1.0, 2.0, 4.0, 8.0]),
    total_memory_mb=st.sampled_from([1024, 2048, 4096]),
    used_cpu=st.sampled_from([0.0, 0.25, 1.0, 2.5]),
    used_memory_mb=st.sampled_from([0, 256, 1024]),
    running_vms=st.integers(0, 4),
    free_disk_mb=st.sampled_from([None, None, 0, 1000, 5000]),
    attributes=st.fixed_dictionaries(
        {
            "GPU": st.sampled_from(["yes", "no"]),
            "PRIORITY": st.sampled_from(["0", "1", "2", "3"]),
            "LABELS": st.sampled_from(["ssd", "hdd,ssd", "hdd"]),
        }
    ),
)
snapshots = st.builds(
    Snapshot,
    hosts=st.lists(host_views, min_size=1, max_size=12, unique_by=lambda h: h.id),
    clusters=st.fixed_dictionaries(
        {
            0: st.just(ClusterView(0)),
            1: st.builds(ClusterView, st.just(1), st.sampled_from([0.0, 0.5, 1.0]), st.just(256)),
            2: st.builds(ClusterView, st.just(2), st.just(1.0), st.just(0)),
        }
    ),
)
demands = st.builds(
    VmDemand,
    vm_id=st.integers(0, 10**6),
    cpu=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
    memory_mb=st.sampled_from([128, 256, 512, 1024]),
    disk_mb=st.sampled_from([0, 0, 500, 2000]),
    hypervisor=st.sampled_from(["kvm", "kvm", "lxc", "fake"]),
    cluster_ids=st.none() | st.none() | st.frozensets(st.integers(0, 3), min_size=1, max_size=2),
    requirements=st.sampled_from(REQUIREMENTS),
    rank=st.sampled_from(RANKS),
    host_id=st.none() | st.none() | st.none() | st.integers(0, 40),
)
vm_lists = st.lists(demands, max_size=30, unique_by=lambda v: v.vm_id)


def _charged(h: HostView, d: VmDemand) -> HostView:
    disk = None if h.free_disk_mb is None else h.free_disk_mb - d.disk_mb
    return replace(
        h,
        used_cpu=h.used_cpu + d.cpu,
        used_memory_mb=h.used_memory_mb + d.memory_mb,
        running_vms=h.running_vms + 1,
        free_disk_mb=disk,
    )


def _can_take(h: HostView, d: VmDemand) -> bool:
    """Tell, the slow obvious way, whether a host can take a VM now."""
    return (
        h.state in (INIT, MONITORED)
        and (d.cluster_ids is None or h.cluster_id in d.cluster_ids)
        and h.hypervisor in (d.hypervisor, "fake")
        and (d.host_id is None or d.host_id == h.id)
        and d.cpu <= h.free_cpu + 1e-9
        and d.memory_mb <= h.free_memory_mb
        and (h.free_disk_mb is None or d.disk_mb == 0 or d.disk_mb <= h.free_disk_mb)
        and parse_requirements(d.requirements).evaluate(host_attributes(h))
    )


def _score(h: HostView, d: VmDemand, policy: str) -> float:
    attrs = host_attributes(h)
    if d.rank:
        return parse_rank(d.rank).evaluate(attrs)
    by_policy = {
        "striping": -h.running_vms,
        "packing": h.running_vms,
        "load-aware": attrs["FREE_CPU"],
        "fixed": parse_rank("PRIORITY").evaluate(attrs),
    }
    return float(by_policy[policy])


@settings(max_examples=300, deadline=None)
@given(snapshot=snapshots, vms=vm_lists, policy=st.sampled_from(POLICIES))
def test_plan_matches_a_naive_replay(snapshot: Snapshot, vms: list[VmDemand], policy: str) -> None:
    """Replay the plan VM by VM against the obvious algorithm on the current usage.

    This checks at once that no host is overcommitted, that every placed VM passes its
    filters and requirements on the host as it was then, that a VM is unplaced only if no
    host could take it at that point, and that the host chosen is the best by the policy.
    """
    result = plan(vms, snapshot, policy)
    where = {p.vm_id: p for p in result.placements}
    assert len(where) + len(result.unplaced) == len(vms)
    current = {h.id: h for h in snapshot.hosts}
    for d in vms:
        able = [h for h in current.values() if _can_take(h, d)]
        if not able:
            assert d.vm_id not in where
            assert result.unplaced[d.vm_id]
            continue
        best = min(able, key=lambda h: (-_score(h, d, policy), h.id))
        assert where[d.vm_id] == Placement(d.vm_id, best.id, best.cluster_id)
        current[best.id] = _charged(best, d)
    for h in current.values():
        original = snapshot.host(h.id)
        assert original is not None
        if h.running_vms > original.running_vms:
            assert h.free_cpu >= -1e-9
            assert h.free_memory_mb >= 0
            assert h.free_disk_mb is None or h.free_disk_mb >= 0 or original.free_disk_mb == 0


@settings(max_examples=200, deadline=None)
@given(snapshot=snapshots, first=demands, policy=st.sampled_from(["packing", "striping"]))
def test_plan_packing_stacks_and_striping_spreads_a_second_vm(
    snapshot: Snapshot, first: VmDemand, policy: str
) -> None:
    """With hosts equally busy, packing puts a twin VM with the first one when it fits;
    striping puts it elsewhere whenever another host can take it."""
    first = replace(first, vm_id=1, requirements="", rank="", host_id=None)
    twin = replace(first, vm_id=2)
    idle = Snapshot([replace(h, running_vms=0) for h in snapshot.hosts], snapshot.clusters)
    result = plan([first, twin], idle, policy)
    if not result.placements:
        return
    chosen = idle.host(result.placements[0].host_id)
    assert chosen is not None
    again = _can_take(_charged(chosen, first), twin)
    elsewhere = any(_can_take(h, twin) for h in idle.hosts if h.id != chosen.id)
    second = result.placements[1].host_id if len(result.placements) > 1 else None
    if policy == "packing" and again:
        assert second == chosen.id
    if policy == "striping" and elsewhere:
        assert second is not None and second != chosen.id
