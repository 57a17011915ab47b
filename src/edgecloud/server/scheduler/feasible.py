"""Feasibility: the filters a host passes before it is ranked for a VM, cheapest first.

1. state: only INIT and MONITORED hosts take VMs;
2. cluster: the host is in one of the VM's clusters;
3. hypervisor: the host runs the VM's kind (a ``fake`` host runs every kind);
4. capacity: CPU and memory after the cluster's reservation, disk when both are known;
5. SCHED_REQUIREMENTS parts that read only static attributes (once per host);
6. SCHED_REQUIREMENTS parts that read usage (FREE_CPU, RUNNING_VMS, ...).

The stack applies 1-3 once per plan by grouping hosts and 4-6 per VM (see ``stack``).
``explain`` runs the filters when nothing is left, to say which one emptied the list; it
puts 5 before 4 so that a requirement no host can ever meet is reported as such rather
than as a lack of capacity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edgecloud.server.scheduler.expressions import Requirement
from edgecloud.server.scheduler.ledger import Ledger, Need
from edgecloud.server.scheduler.snapshot import (
    ELIGIBLE_STATES,
    FAKE_HYPERVISOR,
    USAGE_ATTRIBUTES,
    HostView,
    VmDemand,
)

Group = tuple[int, str]  # (cluster id, hypervisor)


def eligible(host: HostView) -> bool:
    """Return whether the host's state lets it take VMs."""
    return host.state in ELIGIBLE_STATES


def in_clusters(host: HostView, cluster_ids: frozenset[int] | None) -> bool:
    """Return whether the host is in one of the clusters (None: any)."""
    return cluster_ids is None or host.cluster_id in cluster_ids


def runs(host: HostView, hypervisor: str) -> bool:
    """Return whether the host runs VMs of this kind."""
    return (
        host.hypervisor == hypervisor
        or hypervisor in host.kinds
        or host.hypervisor == FAKE_HYPERVISOR
    )


def split(requirement: Requirement) -> tuple[Requirement | None, Requirement | None]:
    """Split a requirement's '&' parts into those reading static attributes and the rest."""
    static = [p for p in requirement.parts if not p.names & USAGE_ATTRIBUTES]
    usage = [p for p in requirement.parts if p.names & USAGE_ATTRIBUTES]
    return _joined(static), _joined(usage)


def _joined(parts: list[Requirement]) -> Requirement | None:
    """Return the conjunction of parts as one requirement, None when there are none."""
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    tests = tuple(p.evaluate for p in parts)
    names = frozenset().union(*(p.names for p in parts))
    text = " & ".join(p.text for p in parts)
    return Requirement(text, lambda a: all(t(a) for t in tests), names, tuple(parts))


def group_hosts(ledger: Ledger) -> dict[Group, list[int]]:
    """Return the eligible hosts (by index) grouped by cluster and hypervisor."""
    groups: dict[Group, list[int]] = {}
    for i, host in enumerate(ledger.hosts):
        if eligible(host):
            for kind in dict.fromkeys((host.hypervisor, *host.kinds)):
                groups.setdefault((host.cluster_id, kind), []).append(i)
    return groups


def groups_for(vm: VmDemand, groups: dict[Group, list[int]]) -> list[Group]:
    """Return the groups whose hosts pass the cluster and hypervisor filters for the VM."""
    kinds = (vm.hypervisor,) if vm.hypervisor == FAKE_HYPERVISOR else (vm.hypervisor, "fake")
    return sorted(
        group
        for group in groups
        if group[1] in kinds and (vm.cluster_ids is None or group[0] in vm.cluster_ids)
    )


_Stage = tuple[Callable[[int], bool], str]


def explain(
    vm: VmDemand,
    need: Need,
    requirement: Requirement,
    ledger: Ledger,
    *,
    among: Sequence[int] = (),
) -> str:
    """Return why no host can take the VM now: the first filter that leaves none.

    ``among`` may give the hosts (indexes) already known to pass the state, cluster,
    hypervisor and static requirement filters; then only capacity and usage are checked.
    """
    hosts = ledger.hosts
    static, usage = split(requirement)
    stages: list[_Stage] = []
    if not among:
        clusters = ", ".join(map(str, sorted(vm.cluster_ids or ()))) or "(none allowed)"
        stages += [
            (lambda i: eligible(hosts[i]), "no host is in state INIT or MONITORED"),
            (
                lambda i: in_clusters(hosts[i], vm.cluster_ids),
                f"no usable host in cluster {clusters}",
            ),
            (lambda i: runs(hosts[i], vm.hypervisor), f"no usable host runs {vm.hypervisor}"),
        ]
        if static is not None:
            stages.append((lambda i: static.evaluate(ledger.static(i)), NO_MATCH))
    stages.append((lambda i: ledger.fits(i, need), ""))
    if usage is not None:
        stages.append((lambda i: usage.evaluate(ledger.attributes(i)), NO_MATCH))
    left = list(among or range(len(hosts)))
    for keep, reason in stages:
        survivors = [i for i in left if keep(i)]
        if not survivors:
            return reason or f"no host has {_short_of(need, left, ledger)}"
        left = survivors
    return "no host can take it"  # not reached: the stack found none among these


NO_MATCH = "no host matches SCHED_REQUIREMENTS"


def _short_of(need: Need, hosts: list[int], ledger: Ledger) -> str:
    """Name what the hosts lack: one resource none has enough of, or several together."""
    cpu = f"{need.cpu / 100:g} free CPU"
    memory = f"{need.memory_mb} MiB free memory"
    disk = f"{need.disk_mb} MiB free disk"
    if all(ledger.free_cpu[i] < need.cpu for i in hosts):
        return cpu
    if all(ledger.free_memory[i] < need.memory_mb for i in hosts):
        return memory
    if all(not ledger.fits(i, Need(0, 0, need.disk_mb)) for i in hosts):
        return disk
    return f"{cpu} and {memory}" + (f" and {disk}" if need.disk_mb else "") + " at once"


def explain_pinned(vm: VmDemand, need: Need, requirement: Requirement, ledger: Ledger) -> str:
    """Return why the host a VM is pinned to cannot take it, or "" if it can."""
    i = ledger.index.get(vm.host_id if vm.host_id is not None else -1)
    if i is None:
        return f"host {vm.host_id} is not known"
    host = ledger.hosts[i]
    checks: list[tuple[Callable[[], bool], Callable[[], str]]] = [
        (lambda: eligible(host), lambda: "is not in state INIT or MONITORED"),
        (lambda: in_clusters(host, vm.cluster_ids), lambda: "is not in the VM's clusters"),
        (lambda: runs(host, vm.hypervisor), lambda: f"does not run {vm.hypervisor}"),
        (lambda: ledger.fits(i, need), lambda: f"lacks {_short_of(need, [i], ledger)}"),
        (
            lambda: requirement.evaluate(ledger.attributes(i)),
            lambda: "does not match SCHED_REQUIREMENTS",
        ),
    ]
    for ok, reason in checks:
        if not ok():
            return f"host {host.id} {reason()}"
    return ""
