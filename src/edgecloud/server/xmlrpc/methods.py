"""The XML-RPC method families, each registering its methods when imported."""

from __future__ import annotations

import importlib

FAMILIES = (
    "edgecloud.server.xmlrpc.m_system",
    "edgecloud.server.xmlrpc.m_infra",
    "edgecloud.server.xmlrpc.m_network",
    "edgecloud.server.xmlrpc.m_images",
    "edgecloud.server.xmlrpc.m_vms",
)


def load() -> None:
    """Import every family (once): their decorators fill `core.METHODS`."""
    for name in FAMILIES:
        importlib.import_module(name)
