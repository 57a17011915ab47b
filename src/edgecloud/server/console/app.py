"""Mount the console on the front-end: static files, login and logout, the pages, errors."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from edgecloud.server.console import (
    pages_admin,
    pages_dashboard,
    pages_datastores,
    pages_infra,
    pages_network,
    pages_provisions,
    pages_templates,
    pages_vms,
)
from edgecloud.server.console.api import Api, ApiError
from edgecloud.server.console.render import bare
from edgecloud.server.console.session import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    Forbidden,
    LoginRequired,
    frontend_of,
    login_token,
    read_form,
    safe_next,
    set_login_cookie,
    set_session,
    to_login,
    transport_of,
    viewer,
)

PAGES = (
    pages_dashboard,
    pages_vms,
    pages_templates,
    pages_infra,
    pages_datastores,
    pages_network,
    pages_provisions,
    pages_admin,
)


def install(app: FastAPI) -> None:
    """Serve the console at `/` on this app."""
    static = Path(str(files("edgecloud.server.console") / "static"))
    app.mount("/static", StaticFiles(directory=static), name="console-static")
    router = APIRouter(include_in_schema=False)
    _login_routes(router)
    for module in PAGES:
        module.routes(router)
    app.include_router(router)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(ApiError, _api_error)
    rest_validation = app.exception_handlers[RequestValidationError]
    app.add_exception_handler(RequestValidationError, _pages_validation(rest_validation))


async def close(app: FastAPI) -> None:
    """Close the console's in-process API client, if one was made."""
    transport = getattr(app.state, "console_transport", None)
    if transport is not None:
        app.state.console_transport = None
        await transport.close()


def _login_routes(router: APIRouter) -> None:
    @router.get("/login")
    async def login_form(request: Request, next: str = "/") -> Response:
        token = login_token(request)
        response = bare("login.html", csrf=token, next=safe_next(next), error="", name="")
        set_login_cookie(request, response, token)
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await read_form(request)
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        name, password = form.get("username", "").strip(), form.get("password", "")
        next_path = safe_next(form.get("next"))
        if not cookie or form.get(CSRF_FIELD) != cookie:
            return _login_again(request, name, next_path, "The form expired; please try again.")
        if not name or not password:
            return _login_again(request, name, next_path, "Enter your user name and password.")
        api = Api(transport_of(request), basic=(name, password))
        ttl = frontend_of(request).settings.token_ttl_seconds
        try:
            answer = await api.post("/login", {"name": "console", "ttl_seconds": ttl})
        except ApiError as exc:
            reason = "Wrong user name or password." if exc.status == 401 else exc.message
            return _login_again(request, name, next_path, reason, status=401)
        response = RedirectResponse(next_path, status_code=303)
        set_session(request, response, answer["token"], ttl)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        # A logout needs the session's CSRF token; without a session there is nothing to end.
        try:
            who = await viewer(request)
        except LoginRequired:
            return to_login("/")
        form = await read_form(request)
        if form.get(CSRF_FIELD) != who.csrf:
            raise Forbidden("the form's CSRF token is missing or wrong; reload the page")
        await who.api.post("/logout")
        response = to_login("/")
        return response


def _login_again(
    request: Request, name: str, next_path: str, error: str, *, status: int = 400
) -> Response:
    token = login_token(request)
    response = bare("login.html", csrf=token, next=next_path, error=error, name=name, status=status)
    set_login_cookie(request, response, token)
    return response


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if request.headers.get("X-Console-Fragment"):
        return Response(status_code=401)
    return to_login(exc.next_path)


def _pages_validation(rest: Any) -> Any:
    """Bad query or path values: an error page on the console's pages, JSON on the API's."""

    async def handler(request: Request, exc: Exception) -> Response:
        path = request.url.path
        if not isinstance(exc, RequestValidationError) or path.startswith(("/api/", "/RPC2")):
            return await rest(request, exc)  # type: ignore[no-any-return]
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        return bare("error.html", status=422, title="422 invalid", message=reasons)

    return handler


async def _forbidden(request: Request, exc: Exception) -> Response:
    return bare("error.html", status=403, title="Forbidden", message=str(exc))


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return bare(
        "error.html", status=exc.status, title=f"{exc.status} {exc.code}", message=exc.message
    )
