"""Run the front-end: migrate and bootstrap the store, then serve HTTP with uvicorn."""

from __future__ import annotations

import gc
import logging
import sys
import threading
from typing import TextIO

import uvicorn

from edgecloud.images.tiny import ImageBuildError, ensure_tiny
from edgecloud.server.app import create_app, prepare_store
from edgecloud.server.bootstrap import ADMIN_NAME
from edgecloud.server.config import Settings
from edgecloud.server.db.engine import Store
from edgecloud.server.logs import configure
from edgecloud.server.seed import register_local_host, register_tiny

log = logging.getLogger("edgecloud.server")


def seed_local(settings: Settings, store: Store, out: TextIO) -> None:
    """Register this machine as a host and the tiny images and templates (each once)."""
    with store.write() as session:
        local = register_local_host(session, settings.local_host_root)
    if local is not None:
        print(f"  registered this machine as host {local.id} '{local.name}'", file=out)
    print("  tiny images: building or reusing the cache (from Debian packages)", file=out)
    try:
        tiny = ensure_tiny()
    except ImageBuildError as exc:
        print(f"  tiny images not built: {exc}", file=out)
        return
    with store.write() as session:
        added = register_tiny(session, tiny)
    if added:
        print(f"  registered {', '.join(added)}", file=out)
    print("  try:  edgecloud vm create --template tiny-vm --wait", file=out)


def serve(settings: Settings, *, local_host: bool = False) -> None:
    """Start the front-end in the foreground; print the URL (and new credentials) first."""
    configure(settings.log_format, settings.log_level)
    store, password = prepare_store(settings)
    host, port = settings.host_port
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    out = sys.stdout
    print(
        f"edgecloud front-end on {url}  (store: {store.dialect}, home: {settings.home})", file=out
    )
    print(f"  web console: {url}/   (log in with the credentials below)", file=out)
    print(f"  API docs: {url}/docs   credentials file: {settings.auth_file}", file=out)
    if password is not None:
        print(f"  first start: created user '{ADMIN_NAME}' with password: {password}", file=out)
        print("  (shown once; it is also in the credentials file, mode 0600)", file=out)
    if local_host:
        seed_local(settings, store, out)
    print(f"  try:  EDGECLOUD_URL={url} edgecloud host list", file=out, flush=True)
    app = create_app(settings, store)
    # Everything loaded so far lives as long as the process: keep the collector off it.
    gc.collect()
    gc.freeze()
    if settings.xmlrpc_bind:
        rpc_host, _, rpc_port = settings.xmlrpc_bind.rpartition(":")
        # The same app on OpenNebula's port; its lifespan (the background loops) runs once,
        # with the main listener.
        second = uvicorn.Server(
            uvicorn.Config(
                app,
                host=rpc_host.strip("[]"),
                port=int(rpc_port),
                log_level="warning",
                access_log=False,
                proxy_headers=False,
                lifespan="off",
            )
        )
        threading.Thread(target=second.run, name="xmlrpc-listener", daemon=True).start()
        print(f"  XML-RPC (OpenNebula clients): http://{settings.xmlrpc_bind}/RPC2", file=out)
    uvicorn.run(
        app, host=host, port=port, log_level="warning", access_log=False, proxy_headers=False
    )
