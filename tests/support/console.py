"""Drive the web console over HTTP as a browser would: log in, read pages, post forms."""

from __future__ import annotations

import re
from typing import Any

import httpx

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class ConsoleSession:
    """One browser session of the console: its cookies and its CSRF token."""

    def __init__(self, url: str) -> None:
        """Open a session (not logged in yet) against a front-end at `url`."""
        self.http = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
        self.csrf = ""

    def login(self, user: str, password: str) -> httpx.Response:
        """Log in through the login form; keep the page's CSRF token."""
        form = self.http.get("/login")
        token = csrf_of(form.text)
        answer = self.http.post(
            "/login", data={"csrf": token, "username": user, "password": password, "next": "/"}
        )
        if answer.status_code == 303:
            self.csrf = csrf_of(self.get("/").text)
        return answer

    def get(self, path: str, **params: Any) -> httpx.Response:
        """GET a page."""
        return self.http.get(path, params=params or None)

    def post(self, path: str, data: dict[str, Any] | None = None) -> httpx.Response:
        """POST a form with the session's CSRF token."""
        return self.http.post(path, data={"csrf": self.csrf, **(data or {})})

    def close(self) -> None:
        """End the HTTP client (not the session on the server)."""
        self.http.close()

    def __enter__(self) -> ConsoleSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def csrf_of(html: str) -> str:
    """Return the CSRF token in a page's forms."""
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)
