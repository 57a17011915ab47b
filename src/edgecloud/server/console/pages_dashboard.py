"""The dashboard: clusters by provider and site, hosts and VMs by state, capacity."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from edgecloud.server.console.common import ViewerDep
from edgecloud.server.console.render import etagged, fragment, page


def routes(router: APIRouter) -> None:
    """Add the dashboard and its live region."""

    @router.get("/")
    async def dashboard(who: ViewerDep) -> Response:
        summary = await who.api.get("/summary")
        return page(who, "dashboard.html", title="Dashboard", watch="vm,host", **_figures(summary))

    @router.get("/dashboard/live")
    async def dashboard_live(who: ViewerDep) -> Response:
        summary = await who.api.get("/summary")
        return etagged(who, fragment(who, "dashboard_live.html", **_figures(summary)))


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    clusters: list[dict[str, Any]] = summary["clusters"]
    providers = Counter(str(c["provider"]) for c in clusters)
    sites = Counter(f"{c['provider']} / {c['site']}" for c in clusters)
    return {
        "summary": summary,
        "providers": sorted(providers.items()),
        "sites": sorted(sites.items()),
        "vm_states": sorted(summary["vms_by_state"].items()),
        "host_states": sorted(summary["hosts_by_state"].items()),
    }
