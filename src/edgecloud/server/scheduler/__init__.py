"""The scheduler: a pure function from a snapshot of hosts and the VMs to place to a plan.

Feasibility filters first (``feasible``), then ranking (``rank``), composed in ``stack``;
``expressions`` compiles SCHED_REQUIREMENTS and SCHED_RANK. No database and no I/O here.
"""

from __future__ import annotations

from edgecloud.server.scheduler.expressions import (
    ExpressionError,
    RankExpr,
    Requirement,
    check_expressions,
    parse_rank,
    parse_requirements,
)
from edgecloud.server.scheduler.rank import DEFAULT_POLICY, POLICIES
from edgecloud.server.scheduler.snapshot import ClusterView, HostView, Snapshot, VmDemand
from edgecloud.server.scheduler.stack import Placement, Plan, place, plan

__all__ = [
    "DEFAULT_POLICY",
    "POLICIES",
    "ClusterView",
    "ExpressionError",
    "HostView",
    "Placement",
    "Plan",
    "RankExpr",
    "Requirement",
    "Snapshot",
    "VmDemand",
    "check_expressions",
    "parse_rank",
    "parse_requirements",
    "place",
    "plan",
]
