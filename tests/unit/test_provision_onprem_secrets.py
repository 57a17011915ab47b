"""The onprem provider's settings and hosts; secrets sealed with the front-end's key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecloud.drivers import registry
from edgecloud.drivers.base import DriverError
from edgecloud.drivers.provision.api import Provider
from edgecloud.drivers.provision.onprem import OnpremProvider
from edgecloud.provision import HostSpec
from edgecloud.server import secrets

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def _hosts(*addresses: str) -> list[HostSpec]:
    return [
        HostSpec(index=i, name=a, address=a, hypervisors=["kvm"]) for i, a in enumerate(addresses)
    ]


def test_onprem_hosts_are_the_machines_given() -> None:
    provider = registry.create("provision", "onprem", state_dir="/nonexistent")
    assert isinstance(provider, Provider)
    made = provider.create_hosts(
        "p1",
        _hosts("192.0.2.10", "192.0.2.11"),
        {"port": 2222, "root": "/srv/edge", "host_keys": f"192.0.2.10 {KEY}\n"},
        KEY,
    )
    assert [(h.address, h.port, h.root, h.resource_id) for h in made] == [
        ("192.0.2.10", 2222, "/srv/edge", "192.0.2.10"),
        ("192.0.2.11", 2222, "/srv/edge", "192.0.2.11"),
    ]
    assert made[0].host_key == KEY and made[1].host_key == ""  # pinned on first contact
    assert provider.resources("p1") == [] and provider.delete_all("p1") == []


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"colour": "red"}, "unknown setting(s) colour"),
        ({"port": 0}, "port must be"),
        ({"port": True}, "port must be"),
        ({"root": "relative"}, "root must be an absolute path"),
        ({"host_keys": "192.0.2.10 ssh-ed25519"}, "host_keys line 1"),
        ({"configure": "maybe"}, "configure must be true or false"),
    ],
)
def test_onprem_settings_are_checked(settings: dict[str, object], reason: str) -> None:
    with pytest.raises(DriverError, match="onprem provider") as refused:
        OnpremProvider().create_hosts("p1", _hosts("192.0.2.10"), settings, KEY)
    assert reason in str(refused.value)


def test_onprem_configure_can_be_skipped() -> None:
    provider = OnpremProvider()
    assert provider.configures({}) is True
    assert provider.configures({"configure": False}) is False
    assert provider.configures({"configure": "no"}) is False


def test_secrets_round_trip_and_refuse_a_foreign_key(tmp_path: Path) -> None:
    sealed = secrets.seal(tmp_path / "a", {"password": "s3cr3t"})
    assert "s3cr3t" not in sealed
    assert (tmp_path / "a" / "secret.key").stat().st_mode & 0o777 == 0o600
    assert secrets.unseal(tmp_path / "a", sealed) == {"password": "s3cr3t"}
    assert secrets.seal(tmp_path / "a", {}) == "" and secrets.unseal(tmp_path / "a", "") == {}
    with pytest.raises(secrets.SecretError):
        secrets.unseal(tmp_path / "b", sealed)  # another front-end's key
    encrypt, decrypt = secrets.cipher(tmp_path / "a")
    assert decrypt(encrypt(b"record")) == b"record"
    with pytest.raises(ValueError, match="key"):
        secrets.cipher(tmp_path / "b")[1](encrypt(b"record"))
