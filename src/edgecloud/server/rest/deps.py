"""Dependencies of the REST routers: the front-end's state and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from starlette.concurrency import run_in_threadpool

from edgecloud.api.common import MAX_ID
from edgecloud.api.workload import Vm
from edgecloud.server.auth.access import Principal
from edgecloud.server.auth.authn import Authenticator
from edgecloud.server.auth.permissions import parse_perms
from edgecloud.server.auth.tokens import SAFE_METHODS, SESSION_COOKIE
from edgecloud.server.background import Background
from edgecloud.server.config import Settings
from edgecloud.server.db.engine import Store
from edgecloud.server.events import EventBus
from edgecloud.server.lifecycle import netsync
from edgecloud.server.lifecycle.drivers import Drivers
from edgecloud.server.metrics import Metrics
from edgecloud.server.services.objects import DEFAULT_PAGE, MAX_PAGE, ListQuery

API_PREFIX = "/api/v1"  # where the REST routes are mounted


@dataclass
class FrontEnd:
    """What request handlers share: settings, store, authenticator, events, background loops."""

    settings: Settings
    store: Store
    authenticator: Authenticator
    events: EventBus
    metrics: Metrics
    drivers: Drivers
    background: Background | None = None

    def wake(self) -> None:
        """Tell the background loops that there is new work."""
        if self.background is not None:
            self.background.wake()

    def sync_security_group(self, group_id: int) -> None:
        """Re-send a changed group's rules to the hosts of the running VMs it filters."""
        netsync.sync_group_soon(self.store, self.drivers, group_id)

    def vm_changed(self, vm: Vm) -> None:
        """Wake the engine for what was queued and tell watchers the VM changed."""
        self.wake()
        self.events.publish(
            "vm",
            vm.id,
            vm.owner_id,
            vm.group_id,
            state=vm.state,
            lcm_state=vm.lcm_state,
            host_id=vm.host_id,
            error=vm.error,
            perms=parse_perms(vm.permissions),
        )

    def wake_monitor(self) -> None:
        """Tell the monitor to probe now (a host was added or changed)."""
        if self.background is not None:
            self.background.monitor.wake()


async def get_frontend(request: Request) -> FrontEnd:
    """Return the front-end the app was built with."""
    return request.app.state.frontend  # type: ignore[no-any-return]


FrontEndDep = Annotated[FrontEnd, Depends(get_frontend)]


async def current_principal(
    request: Request,
    frontend: FrontEndDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    """Authenticate the request (every endpoint uses this); a cache hit costs no thread hop.

    A request without an Authorization header may carry the console's session cookie,
    on GET and HEAD only (the console's live updates): writes always need the header.
    """
    if authorization is None and request.method in SAFE_METHODS:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            authorization = f"Bearer {cookie}"
    principal = frontend.authenticator.cache.get(authorization)
    if principal is None:
        principal = await run_in_threadpool(_authenticate, frontend, authorization)
    request.state.user = principal.name
    return principal


def _authenticate(frontend: FrontEnd, authorization: str | None) -> Principal:
    with frontend.store.read() as session:
        return frontend.authenticator.authenticate(session, authorization)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def list_query(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")] = DEFAULT_PAGE,
    cursor: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="next_cursor of the previous page")
    ] = None,
    name: Annotated[str | None, Query(max_length=128, description="name prefix")] = None,
    owner_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    group_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
) -> ListQuery:
    """Read the paging and common filter parameters."""
    if name is not None and "\x00" in name:
        name = name.replace("\x00", "")
    return ListQuery(
        limit=limit, cursor=cursor, name_prefix=name, owner_id=owner_id, group_id=group_id
    )


ListQueryDep = Annotated[ListQuery, Depends(list_query)]
IdQuery = Annotated[int | None, Query(ge=0, le=MAX_ID)]
Seconds = Annotated[int, Query(ge=1, le=366 * 86_400, description="how far back")]
