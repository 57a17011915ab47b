"""State-change events: published by services, workers and the monitor; streamed as SSE.

Publishing is thread-safe and never blocks: workers run in threads, subscribers are
asyncio queues on the API's event loop. A subscriber that falls behind loses its oldest
events rather than slowing the publisher (it is told, and can re-read the state).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

QUEUE_SIZE = 1000


@dataclass(frozen=True)
class Event:
    """One change: what kind of object, which, whose, and what it looks like now."""

    kind: str  # vm | host | operation
    obj_id: int
    owner_id: int | None
    group_id: int | None
    data: dict[str, Any]
    seq: int = 0
    at: float = field(default_factory=time.time)


@dataclass
class _Subscriber:
    queue: asyncio.Queue[Event]
    loop: asyncio.AbstractEventLoop


class EventBus:
    """Fans events out to the current subscribers."""

    def __init__(self) -> None:
        """Create a bus with no subscribers."""
        self._subscribers: list[_Subscriber] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    def publish(
        self, kind: str, obj_id: int, owner_id: int | None, group_id: int | None, **data: Any
    ) -> None:
        """Send an event to every subscriber (from any thread)."""
        event = Event(kind, obj_id, owner_id, group_id, data, next(self._seq))
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.loop.call_soon_threadsafe(_offer, sub.queue, event)

    def subscribe(self) -> asyncio.Queue[Event]:
        """Start receiving events on the running event loop."""
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        with self._lock:
            self._subscribers.append(_Subscriber(queue, asyncio.get_running_loop()))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        """Stop receiving events."""
        with self._lock:
            self._subscribers = [s for s in self._subscribers if s.queue is not queue]


def _offer(queue: asyncio.Queue[Event], event: Event) -> None:
    if queue.full():
        queue.get_nowait()  # drop the oldest: a slow reader must not stall the cloud
    queue.put_nowait(event)
