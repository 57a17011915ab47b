"""Following `ansible-playbook`'s default output: tasks, failures and the recap.

Ansible's own words are kept verbatim: a failure is the task's name, the host and the
lines Ansible printed for it (`[ERROR]: ...` and `fatal: [host]: FAILED! => {...}`).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

__all__ = ["PlaybookOutput", "TaskFailure"]

_TASK_RE = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?P<name>.*)\] \**$")
_FAILED_RE = re.compile(r"^(?:fatal|failed): \[(?P<host>[^\]]+)\]")
_RECAP_RE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:[a-z]+=\d+\s*)+)$")
_COUNT_RE = re.compile(r"([a-z]+)=(\d+)")
_ERROR_PREFIXES = ("[ERROR]:", "ERROR!")
TAIL_LINES = 40


@dataclass(frozen=True)
class TaskFailure:
    """A task that failed on a host, with the lines Ansible printed about it."""

    task: str
    host: str
    lines: tuple[str, ...]

    def __str__(self) -> str:
        said = "\n".join(f"  {line}" for line in self.lines)
        return f"TASK [{self.task}] on {self.host}:\n{said}"


class PlaybookOutput:
    """Fed each line `ansible-playbook` prints (default callback, no colour)."""

    def __init__(self) -> None:
        self.task: str | None = None  # the task running now (None before the first)
        self.failures: list[TaskFailure] = []
        self.recap: dict[str, dict[str, int]] = {}  # host -> {"ok": n, "changed": n, ...}
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._errors: list[str] = []  # error lines not yet tied to a host's failure
        self._in_recap = False

    def feed(self, line: str) -> None:
        """Take one line of output (without its newline)."""
        self.tail.append(line)
        task = _TASK_RE.match(line)
        if task:
            self.task, self._in_recap = task["name"], False
            return
        if line.startswith("PLAY RECAP "):
            self._in_recap = True
            return
        if self._in_recap:
            recap = _RECAP_RE.match(line.strip())
            if recap:
                counts = {k: int(v) for k, v in _COUNT_RE.findall(recap["counts"])}
                self.recap[recap["host"]] = counts
            return
        if line.startswith(_ERROR_PREFIXES):
            self._errors.append(line)
            return
        failed = _FAILED_RE.match(line)
        if failed:
            host = failed["host"].split(" -> ")[0]
            lines = (*self._errors, line)
            self._errors = []
            self.failures.append(TaskFailure(self.task or "(no task)", host, lines))
            return
        if line.strip() == "...ignoring" and self.failures:
            # The last failure (all its loop items) was ignored by the task.
            last = self.failures[-1]
            while self.failures and (self.failures[-1].task, self.failures[-1].host) == (
                last.task,
                last.host,
            ):
                self.failures.pop()

    @property
    def errors(self) -> list[str]:
        """Ansible's error lines that no host's failure explains (e.g. a syntax error)."""
        return list(self._errors)

    def failed_hosts(self) -> list[str]:
        """The hosts the recap counts failed or unreachable, else those with failures."""
        hosts = [
            host
            for host, counts in self.recap.items()
            if counts.get("failed", 0) or counts.get("unreachable", 0)
        ]
        if hosts:
            return hosts
        return list(dict.fromkeys(failure.host for failure in self.failures))

    def changed(self) -> dict[str, int]:
        """Each host's `changed` count from the recap."""
        return {host: counts.get("changed", 0) for host, counts in self.recap.items()}

    def report(self) -> str:
        """Ansible's own words about what failed: the failures, else its errors or tail."""
        parts = [str(failure) for failure in self.failures]
        parts += self._errors
        if not parts:
            parts = ["last output:", *self.tail]
        return "\n".join(parts)
