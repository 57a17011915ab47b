"""Transports: how the front-end runs commands on a host (over SSH, or locally)."""

from edgecloud.drivers.transport.keys import ensure_client_key, public_key_line
from edgecloud.drivers.transport.local import LocalTransport
from edgecloud.drivers.transport.pool import TransportPool
from edgecloud.drivers.transport.ssh import HostKeyMismatch, SshTransport, fetch_host_key

__all__ = [
    "HostKeyMismatch",
    "LocalTransport",
    "SshTransport",
    "TransportPool",
    "ensure_client_key",
    "fetch_host_key",
    "public_key_line",
]
