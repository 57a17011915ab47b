"""A step's log, kept in the store as the step runs (so `provision show --log` is live)."""

from __future__ import annotations

import threading
import time

from edgecloud.server.db.base import now
from edgecloud.server.db.engine import Store
from edgecloud.server.db.models import ProvisionStep

FLUSH_SECONDS = 0.5  # at most this long between a line and the store seeing it
MAX_LOG = 1024 * 1024  # characters kept per step run; the end is what matters most


class StepLog:
    """Lines of one step run; written in batches, and on every state change."""

    def __init__(self, store: Store, provision_id: int, operation: str, name: str) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._flushed = time.monotonic()
        with store.write() as session:
            row = ProvisionStep(
                provision_id=provision_id,
                operation=operation,
                name=name,
                state="running",
                log="",
                started_at=now(),
            )
            session.add(row)
            session.flush()
            self.step_id = row.id

    def __call__(self, line: str) -> None:
        """Add a line (from any thread)."""
        stamp = time.strftime("%H:%M:%S")
        with self._lock:
            self._pending.append(f"{stamp} {line.rstrip()}")
            due = time.monotonic() - self._flushed >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self, state: str | None = None) -> None:
        """Write the pending lines (and the step's new state)."""
        with self._lock:
            lines, self._pending = self._pending, []
            self._flushed = time.monotonic()
        if not lines and state is None:
            return
        with self.store.write() as session:
            row = session.get(ProvisionStep, self.step_id)
            if row is None:
                return
            if lines:
                text = row.log + "\n".join(lines) + "\n"
                row.log = text[-MAX_LOG:]
            if state is not None:
                row.state, row.ended_at = state, now()

    def done(self) -> None:
        """The step succeeded."""
        self.flush("done")

    def failed(self, error: str) -> None:
        """The step failed: its error is the log's last line."""
        self(f"FAILED: {error}")
        self.flush("failed")
