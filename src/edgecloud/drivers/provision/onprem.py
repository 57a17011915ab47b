"""The `onprem` provider: machines that exist already, given by address; nothing is made.

The template lists `hosts.addresses`; each becomes a host reached over SSH as root with the
front-end's key (which must be in the machine's authorized_keys already: onprem machines
are the operator's). Its host key is pinned on first contact, or given per address in the
`host_keys` setting. Deleting a provision leaves the machines as they are (it only forgets
them); the front-end's guests and files on them are removed by the front-end before that.

Settings: `port` (default 22), `root` (default /var/lib/edgecloud), `host_keys` (text:
one "address key-type key" line per host), `configure` (default true; false: the machines
are set up already, e.g. by the operator's own configuration management, and the host
playbook is not run).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgecloud.drivers import registry
from edgecloud.drivers.base import DriverError
from edgecloud.drivers.provision.api import ProvidedHost, ProviderResource, ProvisionHost
from edgecloud.drivers.provision.layout import check_id

KNOWN = {"port", "root", "host_keys", "configure"}
_ROOT = re.compile(r"^/[A-Za-z0-9._/\-]+$")


class OnpremProvider:
    """A `Provider` for existing machines."""

    def configures(self, settings: Mapping[str, Any]) -> bool:
        """Whether the machines get the host playbook (unless `configure: false`)."""
        return wants_configure(settings)

    def __init__(self, state_dir: Path | str = "") -> None:
        self.state_dir = state_dir  # nothing is kept: the template holds the addresses

    def create_hosts(
        self,
        provision_id: str,
        hosts: Sequence[ProvisionHost],
        settings: Mapping[str, Any],
        authorized_key: str,
    ) -> list[ProvidedHost]:
        """Return the machines as hosts; nothing is created."""
        check_id(provision_id)
        port, root, keys = _settings(settings)
        out = []
        for host in hosts:
            address = getattr(host, "address", None)
            if not address:
                raise DriverError(f"onprem host {host.name}: no address (use hosts.addresses)")
            out.append(
                ProvidedHost(
                    host.name, str(address), port, keys.get(str(address), ""), root, str(address)
                )
            )
        return out

    def delete_hosts(self, provision_id: str, names: Sequence[str]) -> None:
        """Nothing to delete: the machines stay."""
        check_id(provision_id)

    def resources(self, provision_id: str) -> list[ProviderResource]:
        """Nothing is held for a provision."""
        check_id(provision_id)
        return []

    def delete_all(self, provision_id: str) -> list[str]:
        """Nothing to remove."""
        check_id(provision_id)
        return []


def wants_configure(settings: Mapping[str, Any]) -> bool:
    """Whether the host playbook runs on the machines (the `configure` setting)."""
    value = settings.get("configure", True)
    if isinstance(value, str) and value.lower() in ("false", "no", "off", "0"):
        return False
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1"):
        return True
    if not isinstance(value, bool):
        raise DriverError("onprem provider: configure must be true or false")
    return value


def _settings(settings: Mapping[str, Any]) -> tuple[int, str, dict[str, str]]:
    wants_configure(settings)
    unknown = sorted(set(settings) - KNOWN)
    if unknown:
        raise DriverError(
            f"onprem provider: unknown setting(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(KNOWN))})"
        )
    port = settings.get("port", 22)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise DriverError("onprem provider: port must be a number from 1 to 65535")
    root = str(settings.get("root", "/var/lib/edgecloud"))
    if not _ROOT.fullmatch(root):
        raise DriverError("onprem provider: root must be an absolute path")
    keys: dict[str, str] = {}
    for number, line in enumerate(str(settings.get("host_keys", "")).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3:
            raise DriverError(f"onprem provider: host_keys line {number}: 'address type key'")
        keys[parts[0]] = f"{parts[1]} {parts[2]}"
    return port, root, keys


registry.register("provision", "onprem", OnpremProvider)
