"""One transport per host, kept while the host's address, port and pinned key stay the same."""

from __future__ import annotations

import threading
from pathlib import Path

from edgecloud.drivers.base import Transport
from edgecloud.drivers.transport.local import LocalTransport
from edgecloud.drivers.transport.ssh import SshTransport

KINDS = ("ssh", "local")

_Identity = tuple[str, str, int, str | None]


class TransportPool:
    """Caches a transport per host id; safe to use from many threads."""

    def __init__(self, client_key: Path, *, connect_timeout: float = 10.0) -> None:
        self.client_key = client_key
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._transports: dict[int, tuple[_Identity, Transport]] = {}

    def get(
        self, *, host_id: int, address: str, port: int, kind: str, host_key: str | None
    ) -> Transport:
        """Return the host's transport, replacing (and closing) it when the host changed."""
        if kind not in KINDS:
            raise ValueError(f"unknown transport kind {kind!r} (known: {', '.join(KINDS)})")
        identity: _Identity = (kind, address, port, host_key)
        old: Transport | None = None
        with self._lock:
            cached = self._transports.get(host_id)
            if cached is not None and cached[0] == identity:
                return cached[1]
            if cached is not None:
                old = cached[1]
            transport = self._make(identity)
            self._transports[host_id] = (identity, transport)
        if old is not None:
            old.close()
        return transport

    def drop(self, host_id: int) -> None:
        """Forget the host's transport and close it (nothing happens for an unknown host)."""
        with self._lock:
            cached = self._transports.pop(host_id, None)
        if cached is not None:
            cached[1].close()

    def close_all(self) -> None:
        """Close every transport (the pool stays usable: later gets open new ones)."""
        with self._lock:
            cached = list(self._transports.values())
            self._transports.clear()
        errors: list[BaseException] = []
        for _, transport in cached:
            try:
                transport.close()
            except Exception as exc:  # close the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]

    def __len__(self) -> int:
        with self._lock:
            return len(self._transports)

    def _make(self, identity: _Identity) -> Transport:
        kind, address, port, host_key = identity
        if kind == "local":
            return LocalTransport()
        return SshTransport(
            address,
            port=port,
            client_key=self.client_key,
            host_key=host_key,
            connect_timeout=self.connect_timeout,
        )
