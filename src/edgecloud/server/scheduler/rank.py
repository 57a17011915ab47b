"""Ranking: the score of a feasible host for a VM; higher is better, ties go to the lowest id.

The policies are OpenNebula's default ranks (``sched.conf`` DEFAULT_SCHED POLICY):

- ``packing``: ``RUNNING_VMS``, the busiest host first, to consolidate VMs on few hosts;
- ``striping`` (default): ``-RUNNING_VMS``, the least busy host first, to spread them;
- ``load-aware``: ``FREE_CPU``, the host with the most free CPU first;
- ``fixed``: the VM's SCHED_RANK, or else the host's ``PRIORITY`` template attribute
  (OpenNebula's fixed policy), highest first.

A VM's own SCHED_RANK overrides any policy. A score only changes when a VM lands on that
host, which is what lets the stack keep hosts in heaps and update just the chosen one.
"""

from __future__ import annotations

from collections.abc import Callable

from edgecloud.server.scheduler.expressions import RankExpr, parse_rank
from edgecloud.server.scheduler.ledger import Ledger
from edgecloud.server.scheduler.snapshot import USAGE_ATTRIBUTES

POLICIES = ("striping", "packing", "load-aware", "fixed")
DEFAULT_POLICY = "striping"

Score = Callable[[int], float]  # host index in the ledger -> score


def check_policy(policy: str) -> None:
    """Raise ValueError unless the policy is one of POLICIES."""
    if policy not in POLICIES:
        raise ValueError(f"unknown scheduling policy {policy!r}; use one of {', '.join(POLICIES)}")


def ranking(policy: str, rank: RankExpr | None) -> str:
    """Return the name of the ranking a VM gets: its SCHED_RANK text or the policy."""
    if rank is not None:
        return f"SCHED_RANK={rank.text}"
    if policy == "fixed":
        return "SCHED_RANK=PRIORITY"
    return policy


def scorer(ranking_name: str, ledger: Ledger) -> Score:
    """Return the score function of a ranking (see ``ranking``) over the ledger's hosts."""
    running, free_cpu = ledger.running, ledger.free_cpu
    if ranking_name == "striping":
        return lambda i: -running[i]
    if ranking_name == "packing":
        return lambda i: running[i]
    if ranking_name == "load-aware":
        return lambda i: free_cpu[i]
    expr = parse_rank(ranking_name.removeprefix("SCHED_RANK="))
    if expr.names & USAGE_ATTRIBUTES:
        return lambda i: expr.evaluate(ledger.attributes(i))
    # Static ranks read the attribute dict built once per host, not a fresh one.
    return lambda i: expr.evaluate(ledger.static(i))
