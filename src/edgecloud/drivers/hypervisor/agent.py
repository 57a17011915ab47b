"""The front-end's side of the node agent (`node.pyz serve`, see edgecloud.node.serve).

One agent runs per host and node code root, on a stream of the host's transport. Calls
from any number of threads share it: each request line carries an id, and the answer
with that id completes the caller's future. When the agent ends (the connection was
lost, the host rebooted, the node code was replaced) every call still waiting fails,
like a per-call command would have, and the next call starts a new agent.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from edgecloud.drivers.base import DriverError, HostUnreachable, Stream, Streams

log = logging.getLogger("edgecloud.drivers.agent")

# How long a new agent may take to say it is ready (a Python start on a loaded host).
READY_TIMEOUT = 15.0


class AgentEnded(DriverError):
    """The agent process ended before it answered."""


class AgentGone(HostUnreachable):
    """The connection carrying the agent was lost before it answered."""


class NodeAgent:
    """A running `node.pyz serve` on one host: send an action, wait for its answer."""

    def __init__(self, transport: Streams, argv: list[str], where: str) -> None:
        """Start the agent with `argv` on `transport`; raises `DriverError` when it does not
        come up (the message carries the agent's last stderr lines)."""
        self.transport = transport
        self.where = where
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[int, Future[dict[str, Any]]] = {}
        self._ready: Future[dict[str, Any]] = Future()
        self.ended: str | None = None
        self._stream: Stream = transport.open_stream(
            argv, on_line=self._line, on_end=self._end, timeout=READY_TIMEOUT
        )
        try:
            self._ready.result(READY_TIMEOUT)
        except FutureTimeout:
            self._stream.close()
            raise DriverError(
                f"the node agent on {where} did not start within {READY_TIMEOUT:g} s"
            ) from None

    @property
    def alive(self) -> bool:
        """Whether the agent still takes requests."""
        return self.ended is None

    def call(self, action: str, request: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """Run `action` and return the node's answer object ({"ok": ..., ...}).

        Raises `AgentGone` (a `HostUnreachable`) when the connection was lost, `AgentEnded`
        when the agent died, and `DriverError` when no answer came within `timeout`
        seconds; the action may then still be running on the host, where the guest's
        lock keeps the next action on the same guest waiting for it.
        """
        answer: Future[dict[str, Any]] = Future()
        with self._lock:
            if self.ended is not None:
                raise AgentEnded(f"the node agent on {self.where} has ended: {self.ended}")
            ident = next(self._ids)
            self._pending[ident] = answer
        line = json.dumps({"id": ident, "action": action, "request": request}) + "\n"
        try:
            self._stream.send(line.encode())
            return answer.result(timeout)
        except FutureTimeout:
            raise DriverError(
                f"{action} on {self.where} gave no answer within {timeout:g} s"
                " (it may still be running there)"
            ) from None
        finally:
            with self._lock:
                self._pending.pop(ident, None)

    def close(self) -> None:
        """End the agent's input: it finishes the actions it has, then exits."""
        self._stream.close()

    # -- on the transport's reader ----------------------------------------------------

    def _line(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
            ident = message.get("id")
            answer = message["answer"]
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("node agent on %s printed %r", self.where, raw[:200])
            return
        if ident is None:
            if not self._ready.done():
                self._ready.set_result(answer)
            else:
                log.warning("node agent on %s refused a request line: %s", self.where, answer)
            return
        with self._lock:
            waiting = self._pending.pop(ident, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(answer)

    def _end(self, why: str, lost: bool) -> None:
        with self._lock:
            self.ended = why
            waiting = list(self._pending.values())
            self._pending.clear()
        error: Exception = (
            AgentGone(f"the node agent on {self.where} was cut off: {why}")
            if lost
            else AgentEnded(f"the node agent on {self.where} ended: {why}")
        )
        if not self._ready.done():
            self._ready.set_exception(error)
        for future in waiting:
            if not future.done():
                future.set_exception(error)
        log.info("node agent on %s ended: %s", self.where, why)
