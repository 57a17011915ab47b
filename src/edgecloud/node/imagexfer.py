"""Host-to-host image copies for the per-cluster replica cache (standard library only).

A host caches images at ROOT/cache/images/<key> (key: the file's sha256). To give one to
other hosts, `image_serve` starts a detached one-shot HTTP server on an address of this
host: it serves exactly ``GET /<random token>`` with that file, answers 404 to anything
else, and exits after `downloads` complete downloads or `timeout` seconds, whichever
comes first. A host that wants the image runs `image_fetch` with the URL: it downloads
into ROOT/cache/images/incoming/<part>, checking the sha256 (then `image_commit` moves it
into the cache). `image_serve_stop` ends a server early.

The server runs as ``python3 node.pyz image_server ROOT`` (or ``python -m edgecloud.node
image_server ROOT`` from a checkout), in a session of its own, its settings on stdin and
its port reported on stdout before both become /dev/null; it logs to
ROOT/cache/serve/image_server.log.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import select
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from edgecloud.node.proc import alive, cmdline, wait_gone
from edgecloud.node.protocol import NodeError, bad, integer, number, root, text

IMAGES = Path("cache/images")
INCOMING = IMAGES / "incoming"
SERVE_LOG = Path("cache/serve/image_server.log")
KEY = re.compile(r"[0-9a-f]{64}")
PART = re.compile(r"[A-Za-z0-9._-]{1,100}")
MAX_DOWNLOADS = 64
DEFAULT_TIMEOUT = 300.0
MAX_TIMEOUT = 86400.0
FETCH_TIMEOUT = 60.0  # seconds a fetch's socket may wait for the server
START_TIMEOUT = 10.0  # seconds the server has to report its port
CHUNK = 1024 * 1024
LOG_LIMIT = 1024 * 1024
SERVER = "image_server"

Request = dict[str, Any]


def image_key(request: Request) -> str:
    value = text(request, "key")
    if not KEY.fullmatch(value):
        raise bad(f"'key' must be a sha256 in lowercase hex, not {value[:70]!r}")
    return value


def part_name(request: Request) -> str:
    value = text(request, "part")
    if not PART.fullmatch(value) or value in (".", ".."):
        raise bad(f"'part' must be 1 to 100 of A-Z a-z 0-9 . _ -, not {value[:70]!r}")
    return value


def _address(request: Request) -> str:
    value = text(request, "address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise bad(f"'address' must be an IP address of this host, not {value[:60]!r}") from None


def _self_command() -> list[str]:
    """Return how to run this node code again: the zipapp, or the package from a checkout."""
    app = sys.argv[0] if sys.argv else ""
    if app.endswith(".pyz") and os.path.isfile(app):
        return [sys.executable, os.path.abspath(app)]
    return [sys.executable, "-m", "edgecloud.node"]


def _open_log(base: Path) -> IO[bytes]:
    log = base / SERVE_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        big = log.stat().st_size > LOG_LIMIT
    except FileNotFoundError:
        big = False
    return log.open("wb" if big else "ab")


def image_serve(request: Request) -> dict[str, Any]:
    """Start a one-shot server of ROOT/cache/images/<key>; return {"url", "pid"}."""
    base = root(request)
    key = image_key(request)
    address = _address(request)
    downloads = integer(request, "downloads", 1, minimum=1)
    if downloads > MAX_DOWNLOADS:
        raise bad(f"'downloads' must be at most {MAX_DOWNLOADS}")
    timeout = number(request, "timeout", DEFAULT_TIMEOUT, minimum=0.1)
    if timeout > MAX_TIMEOUT:
        raise bad(f"'timeout' must be at most {MAX_TIMEOUT:g} seconds")
    image = base / IMAGES / key
    if not image.is_file():
        raise NodeError("missing", f"image {key} is not in the cache of this host")
    settings = {"key": key, "address": address, "downloads": downloads, "timeout": timeout}
    settings["token"] = token = secrets.token_urlsafe(32)
    with _open_log(base) as log:
        proc = subprocess.Popen(
            [*_self_command(), SERVER, str(base)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd="/",
            start_new_session=True,
        )
    try:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(json.dumps(settings).encode())
        proc.stdin.close()
        report = _read_report(proc.stdout, START_TIMEOUT)
        proc.stdout.close()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    # Reap it when it ends (this process may live on: the node agent).
    threading.Thread(target=proc.wait, name="image-server-reaper", daemon=True).start()
    port = report.get("port")
    if not isinstance(port, int):
        proc.kill()
        why = report.get("error") or "it reported no port"
        raise NodeError("failed", f"cannot serve image {key} on {address}: {why}")
    host = f"[{address}]" if ":" in address else address
    return {"url": f"http://{host}:{port}/{token}", "pid": proc.pid}


def _read_report(out: IO[bytes], timeout: float) -> dict[str, Any]:
    """Read the server's one JSON line (its port, or why it could not listen)."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([out], [], [], left)[0]:
            return {"error": f"it did not report a port within {timeout:g} s"}
        chunk = os.read(out.fileno(), 4096)
        if not chunk:
            return {"error": "it exited at start (see cache/serve/image_server.log)"}
        data += chunk
    try:
        report = json.loads(data.split(b"\n", 1)[0])
    except ValueError:
        return {"error": f"it reported {data[:100]!r}"}
    return report if isinstance(report, dict) else {"error": "it reported no object"}


def image_fetch(request: Request) -> dict[str, Any]:
    """Download an image into ROOT/cache/images/incoming/<part>; return {"bytes", "sha256"}."""
    base = root(request)
    key = image_key(request)
    part = part_name(request)
    url = text(request, "url")
    timeout = number(request, "timeout", FETCH_TIMEOUT, minimum=0.1)
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or not parsed.hostname:
        raise bad(f"'url' must be an http:// URL, not {url.split('/', 3)[:3]!r}")
    shown = f"http://{parsed.netloc}/..."  # the path is the server's secret
    incoming = base / INCOMING
    incoming.mkdir(parents=True, exist_ok=True)
    target = incoming / part
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())
    digest = hashlib.sha256()
    size = 0
    try:
        with opener.open(url, timeout=timeout) as response, target.open("wb") as out:
            declared = response.headers.get("Content-Length")
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            if declared is not None and declared.isdigit() and int(declared) != size:
                raise NodeError(
                    "failed",
                    f"fetching {shown}: the connection ended after {size} of {declared} bytes",
                )
            out.flush()
            os.fsync(out.fileno())
    except urllib.error.HTTPError as exc:
        target.unlink(missing_ok=True)
        raise NodeError("failed", f"fetching {shown}: HTTP {exc.code} {exc.reason}") from None
    except (OSError, HTTPException) as exc:
        target.unlink(missing_ok=True)
        raise NodeError("failed", f"fetching {shown} into {target}: {_why(exc)}") from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    got = digest.hexdigest()
    if got != key:
        target.unlink(missing_ok=True)
        raise NodeError("failed", f"{shown} sent other bytes: sha256 expected {key}, got {got}")
    return {"bytes": size, "sha256": got}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A server of ours never redirects: a 3xx is an error, not a hop elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        return _why(exc.reason) if isinstance(exc.reason, BaseException) else str(exc.reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


def image_serve_stop(request: Request) -> dict[str, Any]:
    """End an image server of this ROOT if it still runs; return {"stopped": bool}."""
    base = root(request)
    pid = integer(request, "pid", minimum=2)
    if not (alive(pid, SERVER) and str(base) in cmdline(pid)):
        return {"stopped": False}
    try:
        os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, SERVER, 5.0):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, SERVER, 5.0)
    except ProcessLookupError:
        pass
    return {"stopped": True}


# --- the server: `image_server ROOT` ------------------------------------------------


class _Server(ThreadingHTTPServer):
    """Serves one file at one path; counts complete downloads; `done` is set at the last."""

    daemon_threads = True

    def __init__(self, address: str, image: int, path: str, downloads: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.image = image  # an open descriptor: the file stays whatever happens to its name
        self.path = path
        self.downloads = downloads
        self.active = 0
        self.completed = 0
        self.done = threading.Event()
        self.lock = threading.Lock()
        super().__init__((address, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer's would look the address's name up in DNS: not needed, maybe slow.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def claim(self) -> bool:
        with self.lock:
            if self.completed + self.active >= self.downloads:
                return False
            self.active += 1
            return True

    def release(self, complete: bool) -> None:
        with self.lock:
            self.active -= 1
            self.completed += complete
            if self.completed >= self.downloads:
                self.done.set()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request a connection
    timeout = FETCH_TIMEOUT  # a client that stalls this long is dropped

    def do_GET(self) -> None:
        if not hmac.compare_digest(self.path.encode(), self.server.path.encode()):
            self.send_error(404)
            return
        if not self.server.claim():
            self.send_error(503, "every download is taken")
            return
        complete = False
        try:
            size = os.fstat(self.server.image).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.flush()
            complete = _send(self.connection, self.server.image, size)
            if complete:
                _drain(self.connection)  # let the client read it all before we exit
        except OSError as exc:
            self.log_message("download cut: %s", exc)
        finally:
            self.server.release(complete)
        self.log_message("download %s", "complete" if complete else "incomplete")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.log_message("%s %s", self.command, code)  # not the path: it is the secret

    def do_HEAD(self) -> None:
        self.send_error(404)

    do_POST = do_PUT = do_DELETE = do_HEAD


def _send(sock: socket.socket, image: int, size: int) -> bool:
    """Send the whole file with sendfile (a stall of FETCH_TIMEOUT s gives up)."""
    sock.settimeout(None)
    stall = struct.pack("ll", int(FETCH_TIMEOUT), 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, stall)
    offset = 0
    while offset < size:
        sent = os.sendfile(sock.fileno(), image, offset, min(size - offset, 64 * CHUNK))
        if sent == 0:
            return False  # the file shrank
        offset += sent
    return True


def _drain(sock: socket.socket) -> None:
    """Close our side, then wait (a little) for the client to close its own."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5.0)
        while sock.recv(4096):
            pass


def _settings(raw: str) -> tuple[str, str, int, float, str]:
    config = json.loads(raw)
    key, address, token = config["key"], config["address"], config["token"]
    downloads, timeout = int(config["downloads"]), float(config["timeout"])
    if not (KEY.fullmatch(key) and isinstance(address, str) and isinstance(token, str)):
        raise ValueError("bad settings")
    return key, address, downloads, timeout, token


def _report(answer: dict[str, Any]) -> None:
    """Tell image_serve how it went, then let go of the pipes."""
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)


def _log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    sys.stderr.write(f"{stamp} image_server[{os.getpid()}] {message}\n")
    sys.stderr.flush()


def server_main(args: list[str]) -> int:
    """`image_server ROOT`, settings on stdin: serve until done or timed out."""
    try:
        if len(args) != 1:
            raise ValueError("usage: image_server ROOT (settings on stdin)")
        base = Path(args[0])
        key, address, downloads, timeout, token = _settings(sys.stdin.read())
        image = os.open(base / IMAGES / key, os.O_RDONLY | os.O_CLOEXEC)
        server = _Server(address, image, "/" + token, downloads)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _report({"error": str(exc) or type(exc).__name__})
        _log(f"cannot start: {exc}")
        return 1
    _report({"port": server.server_port})
    _log(f"serving {key} on {address}:{server.server_port} for {downloads} download(s)")
    thread = threading.Thread(target=server.serve_forever, args=(0.2,), daemon=True)
    thread.start()
    finished = server.done.wait(timeout)
    server.shutdown()
    server.server_close()
    ended = "" if finished else f"; timed out after {timeout:g} s"
    _log(f"{server.completed} download(s) done{ended}")
    return 0
