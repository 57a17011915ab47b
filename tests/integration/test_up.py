"""`edgecloud up` in one process, the CLI in another: what `make run` promises."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

EDGECLOUD = str(Path(sys.executable).parent / "edgecloud")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """Run `edgecloud up --local-host` as a subprocess; stop it by its PID afterwards."""
    url = f"http://127.0.0.1:{_free_port()}"
    host_root = tmp_path / "host"
    host_root.mkdir()
    tmp_path.chmod(0o755)
    env = {
        **os.environ,
        "EDGECLOUD_HOME": str(tmp_path),
        "EDGECLOUD_MONITOR_INTERVAL": "1",
        "EDGECLOUD_LOCAL_HOST_ROOT": str(host_root),
    }
    env.pop("EDGECLOUD_DB", None)
    proc = subprocess.Popen(
        [EDGECLOUD, "up", "--bind", url.removeprefix("http://"), "--local-host"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = _wait_ready(proc, url)
        yield url, tmp_path, lines
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(proc: subprocess.Popen[str], url: str) -> list[str]:
    lines: list[str] = []
    assert proc.stdout is not None
    while "try:" not in "".join(lines):
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("edgecloud up exited:\n" + "".join(lines))
        lines.append(line)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/api/v1/version", timeout=1)
            return lines
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("edgecloud up did not answer")


def test_up_prints_url_and_credentials_and_the_cli_works(
    served: tuple[str, Path, list[str]],
) -> None:
    url, home, lines = served
    output = "".join(lines)
    assert url in output
    password = (home / "auth").read_text().strip().split(":", 1)[1]
    assert f"with password: {password}" in output
    assert "registered this machine as host" in output
    env = {**os.environ, "EDGECLOUD_HOME": str(home), "EDGECLOUD_URL": url}
    env.pop("EDGECLOUD_AUTH", None)
    # The host's capacity is what its first probe (over the local transport) found.
    deadline = time.monotonic() + 60
    while True:
        result = subprocess.run(
            [EDGECLOUD, "host", "list", "-o", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        hosts = json.loads(result.stdout)
        assert [h["name"] for h in hosts] == [socket.gethostname()]
        if hosts[0]["state"] == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert hosts[0]["transport"] == "local"
    assert hosts[0]["total_cpu"] == float(os.cpu_count() or 1), hosts[0]["last_error"]
    table = subprocess.run(
        [EDGECLOUD, "host", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert socket.gethostname() in table.stdout


def test_cli_error_exits_nonzero_with_the_servers_message(
    served: tuple[str, Path, list[str]],
) -> None:
    url, home, _ = served
    env = {**os.environ, "EDGECLOUD_HOME": str(home), "EDGECLOUD_URL": url}
    result = subprocess.run(
        [EDGECLOUD, "vm", "show", "4242"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "vm 4242 does not exist" in result.stderr
