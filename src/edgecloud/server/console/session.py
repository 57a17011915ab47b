"""Console sessions: the login cookie, CSRF tokens on every form, and the viewer of a page.

The session cookie holds an API bearer token (HttpOnly, SameSite=Strict). Each form carries
a CSRF token: an HMAC of the session token under a key derived from the front-end's secret
key, so it is the same in every front-end process and changes with every login. The login
form itself uses a double-submit token (a random cookie and the same value in the form).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from edgecloud.server.auth.tokens import SESSION_COOKIE
from edgecloud.server.console.api import Api, ApiError, Transport
from edgecloud.server.rest.deps import FrontEnd
from edgecloud.server.secrets import derived_key

LOGIN_COOKIE = "edgecloud_login"
CSRF_FIELD = "csrf"
MAX_FORM_BYTES = 1 << 20
ADMIN_GROUP_ID = 0


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to the login form."""

    def __init__(self, next_path: str) -> None:
        """Remember where to come back to."""
        self.next_path = next_path
        super().__init__(next_path)


class Forbidden(Exception):
    """A form without a valid CSRF token."""


def frontend_of(request: Request) -> FrontEnd:
    """Return the front-end serving this request."""
    return request.app.state.frontend  # type: ignore[no-any-return]


def transport_of(request: Request) -> Transport:
    """Return the app's in-process API transport (made on first use)."""
    state = request.app.state
    if getattr(state, "console_transport", None) is None:
        state.console_transport = Transport(request.app)
    return state.console_transport  # type: ignore[no-any-return]


def csrf_for(request: Request, token: str) -> str:
    """Return the CSRF token of a session."""
    state = request.app.state
    key = getattr(state, "console_csrf_key", None)
    if key is None:
        key = state.console_csrf_key = derived_key(frontend_of(request).settings.home, "csrf")
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


@dataclass
class Viewer:
    """Who looks at a page: their API, their user record and their CSRF token."""

    request: Request
    api: Api
    user: dict[str, Any]
    csrf: str

    @property
    def is_admin(self) -> bool:
        """Tell whether the user is an administrator (the console shows admin pages)."""
        return self.user["id"] == 0 or ADMIN_GROUP_ID in self.user.get("group_ids", [])


def safe_next(path: str | None) -> str:
    """Return a local path to go to after login (never another site)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


async def viewer(request: Request) -> Viewer:
    """Return the logged-in viewer, or raise LoginRequired."""
    token = request.cookies.get(SESSION_COOKIE)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not token:
        raise LoginRequired(here)
    api = Api(transport_of(request), token=token)
    try:
        user = await api.get("/me")
    except ApiError as exc:
        if exc.status == 401:
            raise LoginRequired(here) from None
        raise
    return Viewer(request, api, user, csrf_for(request, token))


async def read_form(request: Request) -> dict[str, str]:
    """Parse an urlencoded form body (first value of each field)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Forbidden("form too large")
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


async def checked_form(request: Request, who: Viewer) -> dict[str, str]:
    """Parse a form and check its CSRF token against the viewer's session."""
    form = await read_form(request)
    if not hmac.compare_digest(form.get(CSRF_FIELD, ""), who.csrf):
        raise Forbidden("the form's CSRF token is missing or wrong; reload the page")
    return form


def login_token(request: Request) -> str:
    """Return the login form's double-submit token (the cookie's, or a new one)."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)


def set_session(request: Request, response: Response, token: str, max_age: int) -> None:
    """Keep the API token in the session cookie; drop the login form's cookie."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")


def set_login_cookie(request: Request, response: Response, value: str) -> None:
    """Keep the login form's double-submit token."""
    response.set_cookie(
        LOGIN_COOKIE,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/login",
    )


def to_login(next_path: str) -> RedirectResponse:
    """Redirect to the login form, coming back to `next_path` afterwards."""
    response = RedirectResponse(f"/login?next={quote(safe_next(next_path))}", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
