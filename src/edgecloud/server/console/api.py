"""The console's way to the REST API: in-process HTTP with the user's bearer token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from edgecloud.server.rest.deps import API_PREFIX


class ApiError(Exception):
    """The API refused a request: its status, code, message and the fields it named."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        """Keep the API's error body; an API failure (5xx) is a bad gateway to a page."""
        self.status = status if status < 500 else 502
        self.code = str(body.get("error", "error"))
        self.message = str(body.get("message", "")) or f"HTTP {status}"
        self.field = body.get("field")
        self.fields: list[dict[str, str]] = list(body.get("fields") or [])
        if not self.fields and self.field:
            self.fields = [{"field": str(self.field), "reason": self.message}]
        super().__init__(self.message)


class Transport:
    """One in-process HTTP client per app (the ASGI app is called directly, no socket)."""

    def __init__(self, app: FastAPI) -> None:
        """Bind the client to the app that serves the API."""
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://console" + API_PREFIX
        )

    async def close(self) -> None:
        """Close the client."""
        await self.client.aclose()


@dataclass
class Api:
    """The API as one user sees it (their token), for one console request."""

    transport: Transport
    token: str | None = None
    basic: tuple[str, str] | None = None
    calls: list[str] = field(default_factory=list)

    def _headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    async def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> Any:
        """Call the API; return the decoded body (None for 204) or raise ApiError."""
        query = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        self.calls.append(f"{method} {path}")
        response = await self.transport.client.request(
            method,
            path,
            params=query,
            json=json,
            headers=self._headers(),
            auth=httpx.BasicAuth(*self.basic) if self.basic else httpx.USE_CLIENT_DEFAULT,
        )
        if response.status_code == 204 or not response.content:
            if response.is_error:
                raise ApiError(response.status_code, {})
            return None
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text[:200]}
        if response.is_error:
            raise ApiError(response.status_code, body if isinstance(body, dict) else {})
        return body

    async def get(self, path: str, **params: Any) -> Any:
        """GET path?params."""
        return await self.request("GET", path, params=params)

    async def post(self, path: str, json: Any = None, **params: Any) -> Any:
        """POST a JSON body."""
        return await self.request("POST", path, params=params, json=json)

    async def put(self, path: str, json: Any = None) -> Any:
        """PUT a JSON body."""
        return await self.request("PUT", path, json=json)

    async def delete(self, path: str, **params: Any) -> Any:
        """DELETE path."""
        return await self.request("DELETE", path, params=params)
