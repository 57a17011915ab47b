"""Infrastructure pages: clusters, hosts (live, with monitoring graphs and admin actions).

Images are in pages_images (mounted from here). Every figure comes from the REST API with
the viewer's token, so a user sees exactly the clusters and hosts the API shows them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from edgecloud.api.infra import HOST_STATES
from edgecloud.server.console import pages_images
from edgecloud.server.console.api import ApiError
from edgecloud.server.console.common import (
    PAGE_SIZE,
    Cursor,
    NamePrefix,
    ObjId,
    OptionalId,
    ViewerDep,
    names_of,
    page_links,
    query_string,
)
from edgecloud.server.console.render import etagged, fragment, page
from edgecloud.server.console.session import Viewer, checked_form

StateName = Annotated[str, Query(max_length=32)]
HOST_VMS = 50
MEMBERS_SHOWN = 50
CHART_POINTS = 240
PERIODS = ((3600, "1 hour"), (21_600, "6 hours"), (86_400, "24 hours"))
HOST_STATE_NUMBER = {name: num for num, name in HOST_STATES.items()}
STATUS_TEXT = {
    "enabled": ("Enable", "The host is monitored again and takes new VMs.", False),
    "disabled": (
        "Disable",
        "The scheduler places no new VMs on the host; its VMs keep running.",
        False,
    ),
    "offline": ("Set offline", "The host is no longer monitored and takes no VMs.", True),
}


def routes(router: APIRouter) -> None:
    """Add the cluster and host pages, and the image pages."""
    _cluster_routes(router)
    _host_routes(router)
    _status_routes(router)
    pages_images.routes(router)


# -- clusters -----------------------------------------------------------------------------


def _cluster_routes(router: APIRouter) -> None:
    @router.get("/clusters")
    async def clusters(who: ViewerDep, cursor: Cursor = None, name: NamePrefix = "") -> Response:
        listing, summary = await asyncio.gather(
            who.api.get("/clusters", limit=PAGE_SIZE, cursor=cursor, name=name),
            who.api.get("/summary"),
        )
        capacity = {c["id"]: c for c in summary["clusters"]}
        return page(
            who,
            "clusters.html",
            title="Clusters",
            clusters=listing["items"],
            capacity=capacity,
            name=name,
            **page_links("/clusters", {"name": name}, cursor, listing.get("next_cursor")),
        )

    @router.get("/clusters/{cluster_id}")
    async def cluster(who: ViewerDep, cluster_id: ObjId) -> Response:
        found = await who.api.get(f"/clusters/{cluster_id}")
        hosts, summary, datastores, vnets = await asyncio.gather(
            who.api.get("/hosts", cluster_id=cluster_id, limit=PAGE_SIZE),
            who.api.get("/summary"),
            names_of(who.api, "/datastores", found["datastore_ids"][:MEMBERS_SHOWN]),
            names_of(who.api, "/vnets", found["vnet_ids"][:MEMBERS_SHOWN]),
        )
        capacity = next((c for c in summary["clusters"] if c["id"] == cluster_id), None)
        return page(
            who,
            "cluster.html",
            title=f"Cluster {found['name']}",
            cluster=found,
            hosts=hosts["items"],
            more_hosts=hosts.get("next_cursor") is not None,
            capacity=capacity,
            datastores=datastores,
            vnets=vnets,
            members_shown=MEMBERS_SHOWN,
        )


# -- hosts --------------------------------------------------------------------------------


async def _host_rows(
    who: ViewerDep,
    cursor: Cursor = None,
    name: NamePrefix = "",
    state: StateName = "",
    cluster_id: OptionalId = None,
) -> dict[str, Any]:
    """One page of hosts with their clusters' names, and the link to the next page (a
    dependency: the list page and its live rows share it)."""
    number = HOST_STATE_NUMBER.get(state.upper()) if state else None
    listing = await who.api.get(
        "/hosts", limit=PAGE_SIZE, cursor=cursor, name=name, state=number, cluster_id=cluster_id
    )
    hosts = listing["items"]
    wanted = [h["cluster_id"] for h in hosts] + ([cluster_id] if cluster_id is not None else [])
    clusters = await names_of(who.api, "/clusters", wanted)
    filters: dict[str, Any] = {
        "name": name,
        "state": state.upper() if number is not None else "",
        "cluster_id": cluster_id,
    }
    return {
        "hosts": hosts,
        "clusters": clusters,
        **page_links("/hosts", filters, cursor, listing.get("next_cursor")),
        "rows_src": "/hosts/rows" + query_string(**filters, cursor=cursor),
        "name": name,
        "state": filters["state"],
        "cluster_id": cluster_id,
        "state_names": list(HOST_STATES.values()),
    }


HostRows = Annotated[dict[str, Any], Depends(_host_rows)]


def thin(points: Sequence[tuple[int, float]], most: int = CHART_POINTS) -> list[tuple[int, float]]:
    """Average runs of samples so a chart has at most `most` points (oldest first)."""
    if len(points) <= most:
        return list(points)
    size = -(-len(points) // most)
    out = []
    for start in range(0, len(points), size):
        run = points[start : start + size]
        out.append((run[-1][0], sum(v for _, v in run) / len(run)))
    return out


async def _host_facts(who: Viewer, host_id: int) -> dict[str, Any]:
    """A host and its cluster's name."""
    host = await who.api.get(f"/hosts/{host_id}")
    clusters = await names_of(who.api, "/clusters", [host["cluster_id"]])
    return {"host": host, "cluster_name": clusters.get(host["cluster_id"], "")}


def _host_routes(router: APIRouter) -> None:
    @router.get("/hosts")
    async def hosts(who: ViewerDep, rows: HostRows) -> Response:
        return page(who, "hosts.html", title="Hosts", watch="host", **rows)

    @router.get("/hosts/rows")
    async def host_rows(who: ViewerDep, rows: HostRows) -> Response:
        return etagged(who, fragment(who, "infra_host_rows.html", **rows))

    @router.get("/hosts/{host_id}")
    async def host(
        who: ViewerDep,
        host_id: ObjId,
        seconds: Annotated[int, Query(ge=60, le=86_400)] = 3600,
    ) -> Response:
        facts = await _host_facts(who, host_id)
        samples, vms = await asyncio.gather(
            who.api.get(f"/hosts/{host_id}/monitoring", seconds=seconds),
            who.api.get("/vms", host_id=host_id, limit=HOST_VMS),
        )
        cpu = thin([(s["at"], float(s["cpu"])) for s in samples])
        memory = thin([(s["at"], float(s["memory_mb"])) for s in samples])
        return page(
            who,
            "host.html",
            title=f"Host {facts['host']['name']}",
            watch="host",
            **facts,
            seconds=seconds,
            periods=PERIODS,
            samples=len(samples),
            cpu_points=cpu,
            memory_points=memory,
            vms=vms["items"],
            more_vms=vms.get("next_cursor") is not None,
        )

    @router.get("/hosts/{host_id}/live")
    async def host_live(who: ViewerDep, host_id: ObjId) -> Response:
        facts = await _host_facts(who, host_id)
        return etagged(who, fragment(who, "host_live.html", **facts))


# -- host status (enable, disable, offline) -----------------------------------------------


def _confirm(
    who: Viewer, host: dict[str, Any], status: str, *, error: str = "", code: int = 200
) -> Response:
    verb, effect, danger = STATUS_TEXT.get(status, ("Change", "", False))
    return page(
        who,
        "infra_confirm.html",
        status=code,
        title=f"{verb} host {host['name']}",
        question=f"{verb} host {host['name']} (now {host.get('state_name', '?')})? {effect}",
        action_url=f"/hosts/{host['id']}/status",
        cancel_url=f"/hosts/{host['id']}",
        confirm_label=verb,
        danger=danger,
        error=error,
        hidden={"status": status},
    )


def _status_routes(router: APIRouter) -> None:
    @router.get("/hosts/{host_id}/status")
    async def status_form(
        who: ViewerDep, host_id: ObjId, status: Annotated[str, Query(max_length=16)] = ""
    ) -> Response:
        host = await who.api.get(f"/hosts/{host_id}")
        return _confirm(who, host, status)

    @router.post("/hosts/{host_id}/status")
    async def set_status(who: ViewerDep, host_id: ObjId, request: Request) -> Response:
        form = await checked_form(request, who)
        status = form.get("status", "")[:16]
        try:
            await who.api.post(f"/hosts/{host_id}/status", {"status": status})
        except ApiError as exc:
            try:
                host = await who.api.get(f"/hosts/{host_id}")
            except ApiError:
                host = {"id": host_id, "name": str(host_id)}
            return _confirm(who, host, status, error=exc.message, code=exc.status)
        return RedirectResponse(f"/hosts/{host_id}", status_code=303)
