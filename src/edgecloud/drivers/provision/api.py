"""The provider interface: where a provision's hosts come from (local, onprem, aws)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ProvidedHost:
    """A host a provider made: what the front-end needs to register it over SSH."""

    name: str
    address: str
    port: int
    host_key: str  # the OpenSSH public host key line ("ssh-ed25519 AAAA..."), to pin
    root: str  # the host's directory tree for node code, guests and datastores
    resource_id: str  # the provider's id of the machine (a namespace, an instance id)
    # Host variables for the configuration playbooks where the provider's hosts differ
    # from a plain Linux machine (e.g. where a namespace host's sshd config lives).
    config: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ProviderResource:
    """One thing a provider holds under a provision's tag."""

    kind: str  # e.g. "netns", "bridge", "process", "state", "instance"
    resource_id: str
    detail: str


class ProvisionHost(Protocol):
    """A host to create: its index in the provision (from 0) and its name.

    `edgecloud.provision.HostSpec` is one.
    """

    @property
    def index(self) -> int: ...

    @property
    def name(self) -> str: ...


@runtime_checkable
class Provider(Protocol):
    """Where hosts come from: creates and deletes machines tagged with a provision id."""

    def create_hosts(
        self,
        provision_id: str,
        hosts: Sequence[ProvisionHost],
        settings: Mapping[str, Any],
        authorized_key: str,
    ) -> list[ProvidedHost]:
        """Create the hosts, root reaching them with `authorized_key` (a public key line).

        Idempotent: a host already there is returned as it is, so a retried step resumes.
        """
        ...

    def delete_hosts(self, provision_id: str, names: Sequence[str]) -> None:
        """Delete these hosts of the provision (a host not there is already deleted)."""
        ...

    def resources(self, provision_id: str) -> list[ProviderResource]:
        """List everything the provider holds under the provision's tag."""
        ...

    def delete_all(self, provision_id: str) -> list[str]:
        """Remove everything under the provision's tag, from what exists rather than from
        the front-end's records (which may be incomplete); return what was removed."""
        ...
