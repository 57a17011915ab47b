"""VM pages: the list (server-side paging, search, filters), a VM's page and its live part."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from edgecloud.api.states import VM_STATES
from edgecloud.server.console import vm_forms
from edgecloud.server.console.api import Api, ApiError
from edgecloud.server.console.render import etagged, fragment, page
from edgecloud.server.console.session import Viewer, viewer

ViewerDep = Annotated[Viewer, Depends(viewer)]
VmId = Annotated[int, Path(ge=0, le=2**31 - 1)]
PAGE_SIZES = (25, 50, 100, 200)
STATE_CHOICES = [(n, name) for n, name in sorted(VM_STATES.items()) if name != "INIT"]
ON_HOST = {3, 5, 8}  # ACTIVE, SUSPENDED, POWEROFF: the guest or its disks are on a host


def routes(router: APIRouter) -> None:
    """Add the VM pages."""
    vm_forms.routes(router)

    @router.get("/vms")
    async def vm_list(
        who: ViewerDep,
        name: Annotated[str, Query(max_length=128)] = "",
        state: Annotated[str, Query(max_length=4)] = "",
        host_id: Annotated[str, Query(max_length=10)] = "",
        cursor: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        rows_only: Annotated[bool, Query(include_in_schema=False)] = False,
    ) -> Response:
        filters = {"name": name.strip(), "state": state, "host_id": host_id}
        answer = await who.api.get(
            "/vms", limit=limit, cursor=cursor, include_done=state == "6", **filters
        )
        query = urlencode({**filters, "limit": limit, "cursor": "" if cursor is None else cursor})
        if rows_only:
            return etagged(who, fragment(who, "vm_rows.html", vms=answer["items"]))
        return page(
            who,
            "vms.html",
            title="VMs",
            watch="vm",
            vms=answer["items"],
            next_cursor=answer.get("next_cursor"),
            cursor=cursor,
            filters=filters,
            limit=limit,
            page_sizes=PAGE_SIZES,
            state_choices=STATE_CHOICES,
            query=query,
        )

    @router.get("/vms/rows")
    async def vm_rows(
        who: ViewerDep,
        name: Annotated[str, Query(max_length=128)] = "",
        state: Annotated[str, Query(max_length=4)] = "",
        host_id: Annotated[str, Query(max_length=10)] = "",
        cursor: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> Response:
        return await vm_list(who, name, state, host_id, cursor, limit, rows_only=True)

    @router.get("/vms/{vm_id}")
    async def vm_page(who: ViewerDep, vm_id: VmId, done: str = "") -> Response:
        detail = await _detail(who.api, vm_id, with_console=True)
        title = f"VM {detail['vm']['name']}"
        notice = vm_forms.DONE_NOTICES.get(done, "")
        return page(who, "vm.html", title=title, watch="vm", notice=notice, **detail)

    @router.get("/vms/{vm_id}/live")
    async def vm_live(who: ViewerDep, vm_id: VmId) -> Response:
        detail = await _detail(who.api, vm_id, with_console=False)
        return etagged(who, fragment(who, "vm_live.html", **detail))

    @router.get("/vms/{vm_id}/console")
    async def vm_console(who: ViewerDep, vm_id: VmId) -> Response:
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
