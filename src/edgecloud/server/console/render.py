"""Rendering pages: the Jinja2 environment, filters, and the page response."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from edgecloud import __version__
from edgecloud.api.states import LCM_STATES, VM_STATE, VM_STATES, lcm_state_name, vm_state_name
from edgecloud.server.console import charts
from edgecloud.server.console.session import CSRF_FIELD, Viewer

NAV: tuple[tuple[str, str, bool], ...] = (
    ("/", "Dashboard", False),
    ("/vms", "VMs", False),
    ("/templates", "Templates", False),
    ("/clusters", "Clusters", False),
    ("/hosts", "Hosts", False),
    ("/images", "Images", False),
    ("/datastores", "Datastores", False),
    ("/networks", "Networks", False),
    ("/secgroups", "Security groups", False),
    ("/provisions", "Provisions", False),
    ("/users", "Users", True),
    ("/groups", "Groups", True),
)


def vm_label(state: int, lcm_state: int) -> str:
    """The state a person wants to read: the LCM state while ACTIVE, the state otherwise."""
    if state == VM_STATE["ACTIVE"]:
        return lcm_state_name(lcm_state)
    return vm_state_name(state)


def when(epoch: float | None) -> str:
    """An epoch time as UTC, to the second."""
    if not epoch:
        return "never"
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(epoch: float | None) -> str:
    """How long ago, roughly."""
    if not epoch:
        return "never"
    seconds = max(0, int(time.time() - float(epoch)))
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def mib(value: float | None) -> str:
    """A size in MiB, readable."""
    size = float(value or 0)
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f} TiB"
    if size >= 1024:
        return f"{size / 1024:.1f} GiB"
    return f"{size:g} MiB"


def state_class(label: str) -> str:
    """A CSS class for a state badge."""
    label = label.upper()
    if label in ("RUNNING", "MONITORED", "READY", "DONE_OK", "ON", "USED", "USED_PERS"):
        return "ok"
    if "FAIL" in label or label in ("ERROR", "UNKNOWN", "FAILED"):
        return "bad"
    if label in ("POWEROFF", "DONE", "DISABLED", "OFFLINE", "HOLD", "STOPPED", "UNDEPLOYED"):
        return "off"
    return "busy"


ENV = Environment(
    loader=PackageLoader("edgecloud.server.console", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(when=when, ago=ago, mib=mib, state_class=state_class)
ENV.globals.update(
    vm_label=vm_label,
    bars=charts.bars,
    gauge=charts.gauge,
    line=charts.line,
    version=__version__,
    csrf_field=CSRF_FIELD,
    VM_STATES=VM_STATES,
    LCM_STATES=LCM_STATES,
)


def page(who: Viewer, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page of the logged-in console."""
    nav = [(href, label) for href, label, admin in NAV if who.is_admin or not admin]
    path = who.request.url.path
    active = max(
        (h for h, _ in nav if h == path or (h != "/" and path.startswith(h))), key=len, default="/"
    )
    body = ENV.get_template(template).render(
        who=who, user=who.user, csrf=who.csrf, nav=nav, active=active, **context
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def bare(template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page outside a session (login, errors before login)."""
    body = ENV.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def fragment(who: Viewer, template: str, **context: Any) -> str:
    """Render part of a page (a live region's new content)."""
    return ENV.get_template(template).render(who=who, user=who.user, csrf=who.csrf, **context)


def etagged(who: Viewer, html: str) -> Response:
    """Answer a live region's poll: 304 when the client has this content already."""
    tag = '"' + hashlib.sha256(html.encode()).hexdigest()[:32] + '"'
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if who.request.headers.get("If-None-Match") == tag:
        return Response(status_code=304, headers=headers)
    return HTMLResponse(html, headers=headers)


def states_json() -> Markup:
    """The VM state names for the live badges (a JSON data island)."""
    data = json.dumps({"vm": VM_STATES, "lcm": LCM_STATES}).replace("<", "\\u003c")
    return Markup('<script type="application/json" id="vm-states">{}</script>').format(
        Markup(data)  # noqa: S704 - JSON of our own names, "<" escaped
    )


ENV.globals["states_json"] = states_json
