"""Unit tests for the node's host-to-host image copy: image_serve, image_fetch (on 127.0.0.1).

Every server a test starts is a detached process: the `servers` fixture ends whichever
is still running when the test ends (by pid, and only if it still is an image server).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecloud.node.__main__ import handle
from edgecloud.node.build import build_zipapp
from edgecloud.node.proc import alive, kill

pytestmark = pytest.mark.unit

HOST_PYTHON = "/usr/bin/python3"
SERVER = "image_server"


class Failed(Exception):
    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(f"{answer['kind']}: {answer['error']}")
        self.kind = answer["kind"]
        self.error = answer["error"]


def act(action: str, request: dict[str, Any]) -> dict[str, Any]:
    answer = handle(action, json.dumps(request))
    if not answer["ok"]:
        raise Failed(answer)
    result: dict[str, Any] = answer["result"]
    return result


def put_image(root: Path, data: bytes, key: str | None = None) -> str:
    key = key or hashlib.sha256(data).hexdigest()
    images = root / "cache" / "images"
    images.mkdir(parents=True, exist_ok=True)
    (images / key).write_bytes(data)
    return key


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid, SERVER):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    base.mkdir()
    return base


@pytest.fixture
def image(root: Path) -> tuple[str, bytes]:
    data = os.urandom(3 * 1024 * 1024 + 12345)
    return put_image(root, data), data


@pytest.fixture
def servers(root: Path) -> Iterator[list[int]]:
    """Pids of the servers a test started: each is ended (if still running) at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        act("image_serve_stop", {"root": str(root), "pid": pid})
        kill(pid, SERVER)


def serve(root: Path, key: str, servers: list[int], **extra: Any) -> dict[str, Any]:
    served = act("image_serve", {"root": str(root), "key": key, "address": "127.0.0.1", **extra})
    servers.append(served["pid"])
    return served


def fetch(root: Path, key: str, url: str, part: str = "p1", **extra: Any) -> dict[str, Any]:
    request = {"root": str(root), "key": key, "url": url, "part": part, **extra}
    return act("image_fetch", request)


def test_serve_then_fetch_copies_the_image(
    root: Path, image: tuple[str, bytes], servers: list[int]
) -> None:
    key, data = image
    served = serve(root, key, servers)
    assert served["url"].startswith("http://127.0.0.1:")
    token = served["url"].rsplit("/", 1)[1]
    assert len(token) >= 40
    assert alive(served["pid"], SERVER)
    got = fetch(root, key, served["url"], part="one.part")
    assert got == {"bytes": len(data), "sha256": key}
    assert (root / "cache/images/incoming/one.part").read_bytes() == data
    assert wait_gone(served["pid"], 10), "the server must exit after its one download"
    log = (root / "cache/serve/image_server.log").read_text()
    assert "1 download(s) done" in log
    assert token not in log


def test_checksum_mismatch_removes_the_part(root: Path, servers: list[int]) -> None:
    wrong_key = "ab" * 32
    put_image(root, b"not what the key says", key=wrong_key)
    served = serve(root, wrong_key, servers)
    with pytest.raises(Failed) as failed:
        fetch(root, wrong_key, served["url"])
    assert failed.value.kind == "failed"
    got = hashlib.sha256(b"not what the key says").hexdigest()
    assert f"expected {wrong_key}" in failed.value.error
    assert f"got {got}" in failed.value.error
    assert not (root / "cache/images/incoming/p1").exists()


def test_wrong_token_is_404_and_does_not_count(
    root: Path, image: tuple[str, bytes], servers: list[int]
) -> None:
    key, data = image
    served = serve(root, key, servers)
    base = served["url"].rsplit("/", 1)[0]
    for path in ("/", "/nope", "/" + "x" * 43, "/../cache/images/" + key):
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(base + path, timeout=10)  # noqa: S310 - http on loopback
        assert error.value.code == 404
    with pytest.raises(Failed) as failed:
        fetch(root, key, base + "/wrong-token")
    assert "HTTP 404" in failed.value.error
    assert served["url"].rsplit("/", 1)[1] not in failed.value.error
    assert not (root / "cache/images/incoming/p1").exists()
    assert alive(served["pid"], SERVER)
    assert fetch(root, key, served["url"])["bytes"] == len(data)


def test_server_exits_after_n_downloads(
    root: Path, image: tuple[str, bytes], servers: list[int]
) -> None:
    key, _ = image
    served = serve(root, key, servers, downloads=3)
    for n in range(3):
        assert fetch(root, key, served["url"], part=f"p{n}")["sha256"] == key
        if n < 2:
            assert alive(served["pid"], SERVER)
    assert wait_gone(served["pid"], 10)
    with pytest.raises(Failed) as failed:
        fetch(root, key, served["url"], part="late")
    assert failed.value.kind == "failed"
    assert not (root / "cache/images/incoming/late").exists()


def test_server_exits_after_its_timeout(
    root: Path, image: tuple[str, bytes], servers: list[int]
) -> None:
    key, _ = image
    started = time.monotonic()
    served = serve(root, key, servers, timeout=0.5, downloads=2)
    assert wait_gone(served["pid"], 10)
    assert time.monotonic() - started < 5
    assert "timed out after 0.5 s" in (root / "cache/serve/image_server.log").read_text()


def test_fetch_refuses_other_schemes(root: Path, image: tuple[str, bytes]) -> None:
    key, _ = image
    for url in ("https://127.0.0.1:1/x", "file:///etc/passwd", "ftp://127.0.0.1/x", "http:///x"):
        with pytest.raises(Failed) as failed:
            fetch(root, key, url)
        assert failed.value.kind == "bad_request", url
    assert not (root / "cache/images/incoming").exists()


def test_fetch_of_a_gone_server_fails_quickly(root: Path, image: tuple[str, bytes]) -> None:
    key, _ = image
    with pytest.raises(Failed) as failed:
        fetch(root, key, "http://127.0.0.1:1/token", timeout=5)
    assert failed.value.kind == "failed"
    assert "refused" in failed.value.error.lower()


def test_requests_are_checked(root: Path, image: tuple[str, bytes], servers: list[int]) -> None:
    key, _ = image
    bad_requests: list[tuple[str, dict[str, Any]]] = [
        ("image_serve", {"key": key.upper(), "address": "127.0.0.1"}),
        ("image_serve", {"key": key, "address": "localhost"}),
        ("image_serve", {"key": key, "address": "127.0.0.1", "downloads": 65}),
        ("image_serve", {"key": key, "address": "127.0.0.1", "downloads": 0}),
        ("image_serve", {"key": key, "address": "127.0.0.1", "timeout": 0}),
        ("image_fetch", {"key": key, "url": "http://127.0.0.1:1/x", "part": "../x"}),
        ("image_fetch", {"key": key, "url": "http://127.0.0.1:1/x", "part": ".."}),
        ("image_fetch", {"key": "12", "url": "http://127.0.0.1:1/x", "part": "p"}),
        ("image_serve_stop", {"pid": "12"}),
    ]
    for action, request in bad_requests:
        with pytest.raises(Failed) as failed:
            act(action, {"root": str(root), **request})
        assert failed.value.kind == "bad_request", (action, request)
    with pytest.raises(Failed) as failed:
        act("image_serve", {"root": str(root), "key": "cd" * 32, "address": "127.0.0.1"})
    assert failed.value.kind == "missing"
    assert servers == []


def test_an_address_not_of_this_host_fails(root: Path, image: tuple[str, bytes]) -> None:
    key, _ = image
    with pytest.raises(Failed) as failed:
        act("image_serve", {"root": str(root), "key": key, "address": "192.0.2.77"})
    assert failed.value.kind == "failed"
    assert "192.0.2.77" in failed.value.error


def test_serve_stop_ends_only_our_servers(
    root: Path, image: tuple[str, bytes], servers: list[int]
) -> None:
    key, _ = image
    served = serve(root, key, servers, timeout=60)
    other_root = root.parent / "other"
    assert act("image_serve_stop", {"root": str(other_root), "pid": served["pid"]}) == {
        "stopped": False
    }
    assert alive(served["pid"], SERVER)
    assert act("image_serve_stop", {"root": str(root), "pid": os.getpid()}) == {"stopped": False}
    assert act("image_serve_stop", {"root": str(root), "pid": served["pid"]}) == {"stopped": True}
    assert not alive(served["pid"], SERVER)
    assert act("image_serve_stop", {"root": str(root), "pid": served["pid"]}) == {"stopped": False}


def test_the_zipapp_starts_its_own_server(
    root: Path, image: tuple[str, bytes], servers: list[int], tmp_path: Path
) -> None:
    """Run from node.pyz (the host's Python), image_serve starts `node.pyz image_server`."""
    if not os.access(HOST_PYTHON, os.X_OK):
        pytest.skip(f"{HOST_PYTHON} is missing")
    key, data = image
    app = tmp_path / "node.pyz"
    build_zipapp(app)
    request = {"root": str(root), "key": key, "address": "127.0.0.1"}
    proc = subprocess.run(
        [HOST_PYTHON, str(app), "image_serve"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=30,
    )
    answer = json.loads(proc.stdout)
    assert answer["ok"], answer
    servers.append(answer["result"]["pid"])
    argv = Path(f"/proc/{answer['result']['pid']}/cmdline").read_bytes().split(b"\0")
    assert argv[:4] == [HOST_PYTHON.encode(), str(app).encode(), b"image_server", bytes(root)]
    assert fetch(root, key, answer["result"]["url"]) == {"bytes": len(data), "sha256": key}
    assert wait_gone(answer["result"]["pid"], 10)
