"""The fake provider: hosts that exist only as records, for unit and integration tests.

Its hosts are registered with the fake hypervisor (`hypervisor = "fake"`) and need no
configuration. Settings: any, plus `fail_once` (a method name: `create_hosts`,
`delete_hosts` or `delete_all`) which fails the first call of that method for a provision,
so tests see ERROR and then a retry that resumes, and `sleep` (seconds, at most 30) that
`create_hosts` takes, so tests can stop a front-end mid-step.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgecloud.drivers import registry
from edgecloud.drivers.base import DriverError
from edgecloud.drivers.provision.api import ProvidedHost, ProviderResource, ProvisionHost
from edgecloud.drivers.provision.layout import check_id, check_name


class FakeProvider:
    """A `Provider` keeping its hosts in `<state_dir>/<provision>/hosts.json`."""

    hypervisor = "fake"
    configures = False

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)

    def create_hosts(
        self,
        provision_id: str,
        hosts: Sequence[ProvisionHost],
        settings: Mapping[str, Any],
        authorized_key: str,
    ) -> list[ProvidedHost]:
        """Record the hosts (idempotent)."""
        self._maybe_fail(provision_id, "create_hosts", settings)
        time.sleep(min(30.0, max(0.0, float(settings.get("sleep", 0)))))
        made = self._read(provision_id)
        out = []
        for host in hosts:
            check_name(host.name)
            made.setdefault(host.name, {"index": host.index})
            out.append(self._host(provision_id, host.name))
        self._write(provision_id, made)
        return out

    def delete_hosts(self, provision_id: str, names: Sequence[str]) -> None:
        """Forget the hosts."""
        made = self._read(provision_id)
        for name in names:
            made.pop(name, None)
        self._write(provision_id, made)

    def resources(self, provision_id: str) -> list[ProviderResource]:
        """One resource per host, plus the state directory."""
        check_id(provision_id)
        found = [ProviderResource("host", n, "fake") for n in self._read(provision_id)]
        if (self.state_dir / provision_id).exists():
            found.append(ProviderResource("state", str(self.state_dir / provision_id), ""))
        return found

    def delete_all(self, provision_id: str) -> list[str]:
        """Forget everything of the provision."""
        self._maybe_fail(provision_id, "delete_all", {})
        removed = [f"host {name}" for name in self._read(provision_id)]
        if (self.state_dir / provision_id).exists():
            shutil.rmtree(self.state_dir / provision_id)
            removed.append(f"state {self.state_dir / provision_id}")
        return removed

    def _host(self, provision_id: str, name: str) -> ProvidedHost:
        return ProvidedHost(name, f"{name}.fake", 22, "", "/var/lib/edgecloud", f"fake-{name}")

    def _maybe_fail(self, provision_id: str, method: str, settings: Mapping[str, Any]) -> None:
        check_id(provision_id)
        directory = self.state_dir / provision_id
        marker = directory / f"failed-{method}"
        wanted = settings.get("fail_once") == method
        if wanted:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"fail-{method}").touch()
        if (directory / f"fail-{method}").exists() and not marker.exists():
            marker.touch()
            raise DriverError(f"fake provider: {method} failed as asked (fail_once)")

    def _read(self, provision_id: str) -> dict[str, dict[str, Any]]:
        check_id(provision_id)
        try:
            data = json.loads((self.state_dir / provision_id / "hosts.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, provision_id: str, made: dict[str, dict[str, Any]]) -> None:
        directory = self.state_dir / provision_id
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts.json").write_text(json.dumps(made))


registry.register("provision", "fake", FakeProvider)
