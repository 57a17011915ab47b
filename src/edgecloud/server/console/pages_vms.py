"""VM pages: the list (server-side paging, search, filters), a VM's page and its live part."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from edgecloud.api.states import VM_STATES
from edgecloud.server.console import vm_disk_forms, vm_forms
from edgecloud.server.console.api import Api, ApiError
from edgecloud.server.console.common import (
    PAGE_SIZE,
    Cursor,
    ObjId,
    ViewerDep,
    page_links,
    query_string,
)
from edgecloud.server.console.render import etagged, fragment, page

PAGE_SIZES = (25, 50, 100, 200)
STATE_CHOICES = [(n, name) for n, name in sorted(VM_STATES.items()) if name != "INIT"]
ON_HOST = {3, 5, 8}  # ACTIVE, SUSPENDED, POWEROFF: the guest or its disks are on a host


@dataclass
class VmFilters:
    """What the VM list shows: a name prefix, a state, a host, and where the page starts."""

    name: str
    state: str
    host_id: str
    cursor: int | None
    limit: int

    def api_params(self) -> dict[str, Any]:
        """The API's query for this page (DONE VMs only when asked for by state)."""
        return {
            "name": self.name.strip(),
            "state": self.state,
            "host_id": self.host_id,
            "cursor": self.cursor,
            "limit": self.limit,
            "include_done": self.state == "6",
        }

    def kept(self) -> dict[str, Any]:
        """The filters the pager's links keep."""
        return {
            "name": self.name.strip(),
            "state": self.state,
            "host_id": self.host_id,
            "limit": self.limit if self.limit != PAGE_SIZE else None,
        }


def vm_filters(
    name: Annotated[str, Query(max_length=128)] = "",
    state: Annotated[str, Query(max_length=4)] = "",
    host_id: Annotated[str, Query(max_length=10)] = "",
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = PAGE_SIZE,
) -> VmFilters:
    """Read the VM list's query."""
    return VmFilters(name, state, host_id, cursor, limit)


VmFiltersDep = Annotated[VmFilters, Depends(vm_filters)]


def routes(router: APIRouter) -> None:
    """Add the VM pages."""
    vm_forms.routes(router)
    vm_disk_forms.routes(router)

    @router.get("/vms")
    async def vm_list(who: ViewerDep, shown: VmFiltersDep) -> Response:
        answer = await who.api.get("/vms", **shown.api_params())
        kept = shown.kept()
        return page(
            who,
            "vms.html",
            title="VMs",
            watch="vm",
            vms=answer["items"],
            filters=shown,
            page_sizes=PAGE_SIZES,
            state_choices=STATE_CHOICES,
            rows_src="/vms/rows" + query_string(**kept, cursor=shown.cursor),
            **page_links("/vms", kept, shown.cursor, answer.get("next_cursor")),
        )

    @router.get("/vms/rows")
    async def vm_rows(who: ViewerDep, shown: VmFiltersDep) -> Response:
        answer = await who.api.get("/vms", **shown.api_params())
        return etagged(who, fragment(who, "vm_rows.html", vms=answer["items"]))

    @router.get("/vms/{vm_id}")
    async def vm_page(who: ViewerDep, vm_id: ObjId, done: str = "") -> Response:
        detail = await _detail(who.api, vm_id, with_console=True)
        title = f"VM {detail['vm']['name']}"
        notice = vm_forms.DONE_NOTICES.get(done) or vm_disk_forms.DONE_NOTICES.get(done, "")
        return page(who, "vm.html", title=title, watch="vm", notice=notice, **detail)

    @router.get("/vms/{vm_id}/live")
    async def vm_live(who: ViewerDep, vm_id: ObjId) -> Response:
        detail = await _detail(who.api, vm_id, with_console=False)
        return etagged(who, fragment(who, "vm_live.html", **detail))

    @router.get("/vms/{vm_id}/console")
    async def vm_console(who: ViewerDep, vm_id: ObjId) -> Response:
        vm = await who.api.get(f"/vms/{vm_id}")
        text = await _console(who.api, vm)
        return etagged(who, fragment(who, "vm_console.html", vm=vm, console=text))


async def _detail(api: Api, vm_id: int, *, with_console: bool) -> dict[str, Any]:
    """Everything a VM's page shows, asked of the API side by side."""
    vm = await api.get(f"/vms/{vm_id}")
    disks = _disks(vm)
    jobs: list[Any] = [api.get(f"/vms/{vm_id}/history")]
    jobs += [_snapshots(api, vm, disk) for disk in disks]
    if with_console:
        jobs.append(_console(api, vm))
    results = await asyncio.gather(*jobs)
    history = results[0]
    for disk, snaps in zip(disks, results[1 : 1 + len(disks)], strict=True):
        disk["snapshots"] = snaps
    return {
        "vm": vm,
        "history": list(reversed(history))[:100],
        "disks": disks,
        "console": results[-1] if with_console else "",
        "actions": vm_forms.actions_for(vm),
    }


def _disks(vm: dict[str, Any]) -> list[dict[str, Any]]:
    raw = vm.get("template", {}).get("DISK", [])
    items = raw if isinstance(raw, list) else [raw]
    disks = []
    for i, disk in enumerate(items):
        if isinstance(disk, dict):
            disks.append({"id": int(disk.get("DISK_ID", i)), "attrs": disk, "snapshots": None})
    return disks


async def _snapshots(api: Api, vm: dict[str, Any], disk: dict[str, Any]) -> list[Any] | str:
    if vm["state"] not in ON_HOST or vm.get("host_id") is None:
        return "the VM is on no host"
    try:
        return list(await api.get(f"/vms/{vm['id']}/disks/{disk['id']}/snapshots"))
    except ApiError as exc:
        return exc.message


async def _console(api: Api, vm: dict[str, Any]) -> str:
    if vm["state"] not in ON_HOST or vm.get("host_id") is None:
        return ""
    try:
        answer = await api.get(f"/vms/{vm['id']}/console-log", tail_bytes=16384)
    except ApiError as exc:
        return f"(no console log: {exc.message})"
    return str(answer.get("text", ""))
