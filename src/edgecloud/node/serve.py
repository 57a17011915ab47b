"""`python3 node.pyz serve`: the node agent, many actions over one long-lived process.

The front-end keeps one agent per host on its connection, so an action costs a JSON line
instead of a channel and a Python start. Requests are JSON lines on stdin,
``{"id": N, "action": "deploy", "request": {...}}``; each runs on a thread of its own and
its answer comes back as one line on stdout, ``{"id": N, "answer": {...}}``, in the order
the actions finish. The answer is what ``node.pyz <action>`` would have printed.

The protocol owns the process's stdin and stdout: at start they are moved to private,
non-inheritable descriptors and fds 0 and 1 become /dev/null and stderr, so neither a
stray print nor a child process (QEMU, lxc-start, nft) can read a request or write into
an answer. At end of input the agent lets running actions finish, then exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from typing import Any, BinaryIO

from edgecloud.node.protocol import bad


def _claim_stdio() -> tuple[BinaryIO, BinaryIO]:
    """Take fds 0 and 1 for the protocol; leave /dev/null and stderr in their place."""
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    answers = os.fdopen(os.dup(1), "wb", buffering=0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return requests, answers


class _Answers:
    """Writes one answer line at a time, from any thread."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, ident: Any, answer: dict[str, Any]) -> None:
        line = json.dumps({"id": ident, "answer": answer}, sort_keys=True).encode() + b"\n"
        # When the front-end went away the answer is lost; the action's effect stays.
        with self._lock, contextlib.suppress(BrokenPipeError, ValueError):
            self._out.write(line)


def _run_one(answers: _Answers, ident: Any, action: str, request: Any) -> None:
    from edgecloud.node.__main__ import handle

    raw = json.dumps(request) if request is not None else ""
    answers.send(ident, handle(action, raw))


def _dispatch(answers: _Answers, line: bytes) -> threading.Thread | None:
    """Start the action a request line names; answer a malformed line at once."""
    try:
        message = json.loads(line)
    except ValueError as exc:
        answers.send(None, _refusal(f"the request line is not JSON: {exc}"))
        return None
    if not isinstance(message, dict):
        answers.send(None, _refusal("a request line must be a JSON object"))
        return None
    ident = message.get("id")
    action = message.get("action")
    if not isinstance(action, str) or action in ("serve", ""):
        answers.send(ident, _refusal("'action' must name an action"))
        return None
    worker = threading.Thread(
        target=_run_one,
        args=(answers, ident, action, message.get("request")),
        name=f"node-{action}-{ident}",
    )
    worker.start()
    return worker


def _refusal(message: str) -> dict[str, Any]:
    error = bad(message)
    return {"ok": False, "kind": error.kind, "error": error.message}


def serve() -> int:
    """Answer request lines until the input ends; return the exit status."""
    requests, out = _claim_stdio()
    answers = _Answers(out)
    answers.send(None, {"ok": True, "result": {"ready": True}})
    workers: list[threading.Thread] = []
    for line in requests:
        if not line.strip():
            continue
        worker = _dispatch(answers, line)
        if worker is not None:
            workers.append(worker)
        workers = [w for w in workers if w.is_alive()]
    for worker in workers:
        worker.join()
    return 0
