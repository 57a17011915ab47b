"""Run the front-end: migrate and bootstrap the store, then serve HTTP with uvicorn."""

from __future__ import annotations

import gc
import logging
import os
import socket
import sys

import uvicorn
from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.api.infra import Host, HostCreate
from edgecloud.server.app import create_app, prepare_store
from edgecloud.server.auth.authn import principal_of
from edgecloud.server.bootstrap import ADMIN_NAME
from edgecloud.server.config import Settings
from edgecloud.server.db.models import Host as HostRow
from edgecloud.server.db.models import User
from edgecloud.server.logs import configure
from edgecloud.server.services.hosts import Hosts

log = logging.getLogger("edgecloud.server")


def _memory_mb() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def register_local_host(session: Session) -> Host | None:
    """Add this machine as a host of the default cluster, once; return it if it is new."""
    name = socket.gethostname() or "localhost"
    if session.scalar(select(HostRow.id).where(HostRow.name == name)) is not None:
        return None
    admin = session.get(User, 0)
    assert admin is not None, "the store is bootstrapped before hosts are added"
    body = HostCreate(
        name=name,
        cluster_id=0,
        hypervisor="kvm",
        total_cpu=float(os.cpu_count() or 1),
        total_memory_mb=_memory_mb(),
        template={"LOCAL": "YES"},
    )
    return Hosts().create(session, principal_of(session, admin), body)


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
    print(f"  API docs: {url}/docs   credentials file: {settings.auth_file}", file=out)
    if password is not None:
        print(f"  first start: created user '{ADMIN_NAME}' with password: {password}", file=out)
        print("  (shown once; it is also in the credentials file, mode 0600)", file=out)
    if local_host:
        with store.write() as session:
            local = register_local_host(session)
        if local is not None:
            print(f"  registered this machine as host {local.id} '{local.name}'", file=out)
    print(f"  try:  EDGECLOUD_URL={url} edgecloud host list", file=out, flush=True)
    app = create_app(settings, store)
    # Everything loaded so far lives as long as the process: keep the collector off it.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app, host=host, port=port, log_level="warning", access_log=False, proxy_headers=False
    )
