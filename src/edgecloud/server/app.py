"""Build the front-end's ASGI app: store, auth, routers, error handlers, middleware."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from edgecloud import __version__
from edgecloud.server.auth.authn import Authenticator
from edgecloud.server.background import build, driver_options
from edgecloud.server.bootstrap import bootstrap
from edgecloud.server.config import Settings
from edgecloud.server.console import app as console
from edgecloud.server.db.engine import Store, open_store
from edgecloud.server.db.migrate import upgrade
from edgecloud.server.events import EventBus
from edgecloud.server.lifecycle.drivers import Drivers
from edgecloud.server.metrics import Metrics
from edgecloud.server.middleware import BodyLimit, RequestContext
from edgecloud.server.rest import errors, identity, infra, network, provisions, watch, workload
from edgecloud.server.rest.deps import API_PREFIX, FrontEnd, PrincipalDep
from edgecloud.server.xmlrpc import endpoint as xmlrpc_endpoint

log = logging.getLogger("edgecloud.server")


def prepare_store(settings: Settings) -> tuple[Store, str | None]:
    """Open and migrate the store; create the built-in objects on first start."""
    store = open_store(settings.db_url, pool_size=settings.db_pool_size)
    upgrade(store.engines[-1])
    with store.write() as session:
        password = bootstrap(session, settings.auth_file)
    return store, password


def create_app(
    settings: Settings, store: Store | None = None, *, background: bool = True
) -> FastAPI:
    """Return the ASGI app serving the REST API; its lifespan runs the background loops."""
    if store is None:
        store, _ = prepare_store(settings)
    events = EventBus()
    metrics = Metrics(store)
    drivers = Drivers(driver_options(settings))
    loops = build(settings, store, events, metrics, drivers) if background else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if loops is not None:
            loops.start()
        try:
            yield
        finally:
            if loops is not None:
                await asyncio.to_thread(loops.stop)
            await asyncio.to_thread(drivers.close)
            await console.close(app)

    app = FastAPI(
        lifespan=lifespan,
        title="edgecloud",
        version=__version__,
        description="One front-end for many edge clusters of VMs and containers.",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.frontend = FrontEnd(
        settings=settings,
        store=store,
        authenticator=Authenticator(settings.auth_cache_seconds),
        events=events,
        metrics=metrics,
        drivers=drivers,
        background=loops,
    )
    errors.install(app)
    # One level of routers under the app: every extra level is another linear route scan.
    for module in (workload, infra, network, identity, provisions, watch):
        for router in module.routers():
            app.include_router(router, prefix=API_PREFIX)
    for router in xmlrpc_endpoint.routers():
        app.include_router(router)  # POST /RPC2, as OpenNebula serves it
    _docs(app)
    console.install(app)  # the web console at /, over the routes above
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContext, observe=metrics.observe_api)
    return app


def _docs(app: FastAPI) -> None:
    """Serve the OpenAPI document and Swagger UI behind the same authentication."""

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(principal: PrincipalDep) -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False)
    def docs(principal: PrincipalDep) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="edgecloud API")
