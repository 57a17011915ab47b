"""The node agent: `node serve` on a local stream, and the front-end's NodeAgent over it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from edgecloud.drivers.base import DriverError, EndCallback, HostRef, LineCallback
from edgecloud.drivers.hypervisor.agent import AgentEnded, NodeAgent
from edgecloud.drivers.hypervisor.node import NodeHypervisor
from edgecloud.drivers.transport.local import LocalTransport
from edgecloud.drivers.transport.stream_local import LocalStream

SERVE = [sys.executable, "-m", "edgecloud.node", "serve"]


def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone too
                if stat.read().split()[2] == "Z":
                    return True
        except (FileNotFoundError, ProcessLookupError):
            return True  # it went between the two looks
        time.sleep(0.02)
    return False


@pytest.fixture
def agent() -> Iterator[NodeAgent]:
    running = NodeAgent(LocalTransport(), SERVE, "here")
    yield running
    running.close()
    assert _gone(running._stream.pid)  # type: ignore[attr-defined]


def test_an_action_answers_like_a_command_of_its_own(agent: NodeAgent, tmp_path: Path) -> None:
    answer = agent.call("poll_all", {"root": str(tmp_path)}, timeout=10)
    assert answer == {"ok": True, "result": {"guests": []}}
    once = subprocess.run(
        [*SERVE[:-1], "poll_all"],
        input=json.dumps({"root": str(tmp_path)}).encode(),
        capture_output=True,
        check=False,
    )
    assert json.loads(once.stdout) == answer


def test_errors_are_answers_and_name_the_field(agent: NodeAgent, tmp_path: Path) -> None:
    answer = agent.call("poll", {"root": str(tmp_path), "deploy_id": "x"}, timeout=10)
    assert answer["ok"] is False
    assert answer["kind"] == "bad_request"
    assert "deploy_id" in answer["error"]
    assert agent.call("no_such", {}, timeout=10)["error"] == "unknown action 'no_such'"
    assert agent.call("serve", {}, timeout=10)["kind"] == "bad_request"
    assert agent.alive  # a refused request does not end the agent


def test_many_threads_share_one_agent(agent: NodeAgent, tmp_path: Path) -> None:
    results: list[dict[str, object]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            found = agent.call(
                "console_log", {"root": str(tmp_path), "deploy_id": "one-7"}, timeout=10
            )
            with lock:
                results.append(found)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 160
    assert all(r["kind"] == "missing" and "one-7" in str(r["error"]) for r in results)


def test_a_malformed_line_is_refused_and_the_agent_goes_on(
    agent: NodeAgent, tmp_path: Path
) -> None:
    agent._stream.send(b"{not json\n")
    agent._stream.send(b"[1, 2]\n")
    assert agent.call("version", {}, timeout=10)["ok"] is True


def test_an_agent_that_died_fails_its_callers_and_says_so(agent: NodeAgent) -> None:
    os.kill(agent._stream.pid, 9)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while agent.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not agent.alive
    with pytest.raises(AgentEnded, match="status -9"):
        agent.call("version", {}, timeout=10)


def test_a_child_process_cannot_touch_the_protocol(tmp_path: Path) -> None:
    """Children of the agent get /dev/null as stdin and stderr as stdout."""
    script = (
        "import subprocess, sys\n"
        "from edgecloud.node.serve import _claim_stdio\n"
        "requests, answers = _claim_stdio()\n"
        "subprocess.run(['sh', '-c', 'echo child-out; read x; echo \"read:$x\" >&2'])\n"
        "print('stray print')\n"
        "answers.write(requests.readline())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=b"line\n", capture_output=True, check=True
    )
    assert done.stdout == b"line\n"
    assert b"child-out" in done.stderr
    assert b"read:\n" in done.stderr  # the child read nothing of the requests
    assert b"stray print" in done.stderr


def test_an_agent_that_does_not_come_up_is_an_error() -> None:
    with pytest.raises(AgentEnded, match="status 3"):
        NodeAgent(LocalTransport(), [sys.executable, "-c", "import sys; sys.exit(3)"], "here")


class _SilentStream:
    """A stream whose command never answers (unit tests only)."""

    def __init__(self, on_line: LineCallback) -> None:
        self.sent: list[bytes] = []
        self.closed = False
        on_line(json.dumps({"id": None, "answer": {"ok": True}}).encode() + b"\n")

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        self.closed = True


class _SilentTransport:
    def open_stream(
        self, argv: Sequence[str], *, on_line: LineCallback, on_end: EndCallback, timeout: float
    ) -> _SilentStream:
        return _SilentStream(on_line)


def test_no_answer_in_time_is_an_error_naming_the_action() -> None:
    agent = NodeAgent(_SilentTransport(), ["x"], "slowhost")
    with pytest.raises(DriverError, match=r"deploy on slowhost gave no answer within 0\.05 s"):
        agent.call("deploy", {}, timeout=0.05)
    assert agent.alive and not agent._pending


class _NoStreams(LocalTransport):
    def open_stream(self, *args: object, **kwargs: object) -> LocalStream:
        raise DriverError("streams refused here")


def _local_host(root: Path) -> HostRef:
    root.mkdir()
    return HostRef(id=1, name="here", transport="local", root=str(root))


def test_the_driver_keeps_one_agent_and_restarts_it(tmp_path: Path) -> None:
    driver = NodeHypervisor(client_key=tmp_path / "key")
    host = _local_host(tmp_path / "root")
    try:
        driver.poll_all(host)  # installs the node code, then starts the agent
        first = driver._agents[(1, host.root)]
        driver.poll_all(host)
        assert driver._agents[(1, host.root)] is first
        pid = first._stream.pid  # type: ignore[attr-defined]
        os.kill(pid, 9)
        assert _gone(pid)
        while first.alive:
            time.sleep(0.01)
        assert driver.poll_all(host) == []
        second = driver._agents[(1, host.root)]
        assert second is not first
        driver.sync(host, force=True)  # new code: the agent is replaced
        assert _gone(second._stream.pid)  # type: ignore[attr-defined]
        assert driver._agents[(1, host.root)] is not second
    finally:
        driver.close()


def test_without_streams_each_action_is_a_command(tmp_path: Path) -> None:
    driver = NodeHypervisor(client_key=tmp_path / "key")
    host = _local_host(tmp_path / "root")
    driver.pool._transports[1] = (("local", host.name, 22, None), _NoStreams())
    try:
        assert driver.poll_all(host) == []
        assert not driver._agents
        assert driver._no_agent_until
    finally:
        driver.close()
