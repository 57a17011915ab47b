"""Read what a test wants of the fake hypervisor from the VM's and the host's templates.

A VM template steers its guest (Nomad's mock driver is steered by the job the same way):

- ``FAKE_DEPLOY_DELAY`` seconds deploy takes; ``FAKE_ACTION_DELAY`` seconds every other
  action on the guest takes;
- ``FAKE_FAIL`` a comma list of actions that raise ``DriverError`` (deploy, shutdown,
  reboot, save, restore, cleanup, nic_attach, nic_detach); ``FAKE_FAIL_TIMES=N`` fails
  only the first N calls of each of those actions for this VM on this host, then lets
  them succeed;
- ``FAKE_VANISH_AFTER`` seconds after deploy at which the guest disappears, as if it
  had crashed.

A host template steers the host: ``FAKE_DOWN=YES`` makes every call raise
``HostUnreachable``; ``FAKE_CPU`` / ``FAKE_MEMORY`` (else ``CPU`` / ``MEMORY``) set its
capacity. A value that does not parse raises ``DriverError`` naming the attribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgecloud.drivers.base import DriverError, HostRef, HostUnreachable

FAILABLE_ACTIONS = frozenset(
    {"deploy", "shutdown", "reboot", "save", "restore", "cleanup", "nic_attach", "nic_detach"}
)
DEFAULT_HOST_CPU = 8.0
DEFAULT_HOST_MEMORY_MB = 16384


@dataclass(frozen=True, slots=True)
class GuestScript:
    """Hold what a VM template asks of its fake guest: its size and its scripted behaviour."""

    cpu: float = 0.0
    memory_mb: int = 0
    deploy_delay: float = 0.0
    action_delay: float = 0.0
    fail: tuple[str, ...] = ()
    fail_times: int | None = None
    vanish_after: float | None = None

    @classmethod
    def from_template(cls, template: Mapping[str, Any]) -> GuestScript:
        """Read a guest's size and FAKE_* behaviour from its VM template."""
        fail_times = template.get("FAKE_FAIL_TIMES")
        vanish_after = template.get("FAKE_VANISH_AFTER")
        return cls(
            cpu=_number(template, "CPU", 0.0),
            memory_mb=int(_number(template, "MEMORY", 0)),
            deploy_delay=_number(template, "FAKE_DEPLOY_DELAY", 0.0),
            action_delay=_number(template, "FAKE_ACTION_DELAY", 0.0),
            fail=_actions(template.get("FAKE_FAIL")),
            fail_times=None if fail_times is None else int(_number(template, "FAKE_FAIL_TIMES", 0)),
            vanish_after=None
            if vanish_after is None
            else _number(template, "FAKE_VANISH_AFTER", 0),
        )


def check_host_up(host: HostRef) -> None:
    """Raise HostUnreachable when the host's template says FAKE_DOWN=YES."""
    if str(host.attributes.get("FAKE_DOWN", "")).strip().upper() == "YES":
        raise HostUnreachable(f"fake host {host.name} is down")


def host_capacity(host: HostRef) -> tuple[float, int]:
    """Return the host's (total CPU, total memory in MiB) from FAKE_CPU/CPU, FAKE_MEMORY/MEMORY."""
    attrs = host.attributes
    cpu_key = "FAKE_CPU" if "FAKE_CPU" in attrs else "CPU"
    memory_key = "FAKE_MEMORY" if "FAKE_MEMORY" in attrs else "MEMORY"
    cpu = _number(attrs, cpu_key, DEFAULT_HOST_CPU)
    memory_mb = int(_number(attrs, memory_key, DEFAULT_HOST_MEMORY_MB))
    return cpu, memory_mb


def _number(attrs: Mapping[str, Any], key: str, default: float) -> float:
    """Read a non-negative number attribute, or `default` when it is absent."""
    raw = attrs.get(key)
    if raw is None:
        return default
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise DriverError(f"{key} must be a number, got {raw!r}") from None
    if not 0 <= value < float("inf"):
        raise DriverError(f"{key} must be a non-negative number, got {raw!r}")
    return value


def _actions(raw: Any) -> tuple[str, ...]:
    """Parse FAKE_FAIL ("deploy, save"); an unknown action is a typo worth an error."""
    if raw is None:
        return ()
    actions = tuple(a.strip().lower() for a in str(raw).split(",") if a.strip())
    unknown = sorted(set(actions) - FAILABLE_ACTIONS)
    if unknown:
        known = ", ".join(sorted(FAILABLE_ACTIONS))
        raise DriverError(f"FAKE_FAIL names unknown actions {unknown} (known: {known})")
    return actions
