"""Error responses: every error names the field and the reason, and is never a 5xx by design."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from edgecloud.server.errors import ApiError

log = logging.getLogger("edgecloud.api")


def _body(request: Request, status: int, code: str, message: str, **extra: Any) -> Response:
    rid = getattr(request.state, "request_id", "")
    headers = {"WWW-Authenticate": 'Basic realm="edgecloud"'} if status == 401 else None
    content = {"error": code, "message": message, "request_id": rid, **extra}
    return Response(
        orjson.dumps(content), status_code=status, headers=headers, media_type="application/json"
    )


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or ".".join(str(p) for p in loc)


async def api_error(request: Request, exc: Exception) -> Response:
    """Render a service error."""
    assert isinstance(exc, ApiError)
    fields = getattr(exc, "fields", None)
    extra = {"fields": fields} if fields else {}
    return _body(request, exc.status, exc.code, exc.message, field=exc.field, **extra)


async def validation_error(request: Request, exc: Exception) -> Response:
    """Render pydantic's refusals as a list of (field, reason)."""
    assert isinstance(exc, RequestValidationError)
    fields = [{"field": _loc(tuple(e["loc"])), "reason": e["msg"]} for e in exc.errors()]
    message = "; ".join(f"{f['field']}: {f['reason']}" for f in fields[:5])
    first = fields[0]["field"] if fields else None
    return _body(request, 422, "invalid", message, field=first, fields=fields)


async def http_error(request: Request, exc: Exception) -> Response:
    """Render Starlette's own errors (404 route, 405 method) in our shape."""
    assert isinstance(exc, StarletteHTTPException)
    return _body(request, exc.status_code, "http", str(exc.detail))


async def integrity_error(request: Request, exc: Exception) -> Response:
    """A constraint caught a race the services' checks missed: a conflict, not a crash."""
    log.warning("integrity error: %s", exc)
    return _body(request, 409, "conflict", "the change conflicts with another one; retry")


async def stale_error(request: Request, exc: Exception) -> Response:
    """Someone else updated the object between our read and our write."""
    return _body(
        request, 409, "conflict", "version: object changed concurrently; retry", field="version"
    )


async def busy_error(request: Request, exc: Exception) -> Response:
    """Two writers collided (deadlock, serialisation, a locked SQLite file): try again."""
    text = str(exc).lower()
    if not any(w in text for w in ("deadlock", "could not serialize", "database is locked")):
        raise exc
    log.warning("store busy: %s", exc)
    return _body(request, 409, "conflict", "the store was busy with a conflicting change; retry")


async def data_error(request: Request, exc: Exception) -> Response:
    """A value the database cannot store (out of range, bad encoding)."""
    log.warning("data error: %s", exc)
    return _body(request, 422, "invalid", "a value is out of range or not storable")


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(IntegrityError, integrity_error)
    app.add_exception_handler(StaleDataError, stale_error)
    app.add_exception_handler(DataError, data_error)
    app.add_exception_handler(OperationalError, busy_error)
