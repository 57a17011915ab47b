"""Reaching the XML-RPC endpoint in tests: pyone, and raw calls whose documents are
validated against OpenNebula's XSDs (every document a test receives)."""

from __future__ import annotations

import xmlrpc.client
from typing import Any

import pyone
from pyone import server_xrpc

from tests.support.frontend import RunningFrontEnd
from tests.support.onexsd import validate


def rpc_url(frontend: RunningFrontEnd) -> str:
    """The endpoint's URL."""
    return f"{frontend.url}/RPC2"


class _Validating(server_xrpc.OneServerXRPC):  # type: ignore[misc]
    """pyone's own XML-RPC client, validating each document it receives before it parses
    it (every document a test receives goes through the XSDs)."""

    def _do_request(self, method: str, params: Any) -> Any:
        answer = super()._do_request(method, params)
        if answer and answer[0] and isinstance(answer[1], str) and answer[1].startswith("<"):
            validate(answer[1], extended=method == "one.vmpool.infoextended")
        return answer


def pyone_client(frontend: RunningFrontEnd, user: str = "", password: str = "") -> Any:
    """pyone's OneServer (XML-RPC) for a user (the admin by default)."""
    session = f"{user or frontend.admin_user}:{password or frontend.admin_password}"
    server = pyone.OneServer(rpc_url(frontend), session=session)
    assert isinstance(server, server_xrpc.OneServerXRPC)
    return _Validating(rpc_url(frontend), session)


class Raw:
    """Calls without pyone: the answer as sent, any XML document in it validated."""

    def __init__(self, frontend: RunningFrontEnd, user: str = "", password: str = "") -> None:
        self.session = f"{user or frontend.admin_user}:{password or frontend.admin_password}"
        self.proxy = xmlrpc.client.ServerProxy(rpc_url(frontend), allow_none=False)

    def call(self, method: str, *params: Any, extended: bool = False) -> list[Any]:
        """`[success, value, code, ...]`; a document in `value` must match the XSDs."""
        answer: list[Any] = getattr(self.proxy, method)(self.session, *params)
        if answer[0] and isinstance(answer[1], str) and answer[1].startswith("<"):
            validate(answer[1], extended=extended)
        return answer

    def ok(self, method: str, *params: Any, extended: bool = False) -> Any:
        """The value of a call that must succeed."""
        answer = self.call(method, *params, extended=extended)
        assert answer[0] is True, answer
        return answer[1]

    def error(self, method: str, *params: Any) -> tuple[str, int]:
        """The message and code of a call that must fail."""
        answer = self.call(method, *params)
        assert answer[0] is False, answer
        return answer[1], answer[2]
