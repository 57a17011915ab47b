"""Front-end configuration: one TOML file, every key overridable by an EDGECLOUD_* variable."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ENV_PREFIX = "EDGECLOUD_"


def default_home() -> Path:
    """Return $EDGECLOUD_HOME, or ~/.local/share/edgecloud."""
    env = os.environ.get("EDGECLOUD_HOME")
    return Path(env) if env else Path.home() / ".local" / "share" / "edgecloud"


class Settings(BaseModel):
    """Everything the front-end reads at start; see deploy/edgecloud.toml for a commented copy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(default_factory=default_home)
    db: str = ""  # empty: SQLite at $home/edgecloud.db
    bind: str = "127.0.0.1:2474"
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    token_ttl_seconds: int = Field(default=12 * 3600, ge=60)
    db_pool_size: int = Field(default=16, ge=1)
    # Seconds a front-end process trusts an Authorization header it has checked (0: never).
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # Lifecycle: worker threads running operations, and the lease a worker holds on one.
    workers: int = Field(default=8, ge=1, le=256)
    lease_seconds: float = Field(default=10.0, gt=0)
    scheduler_policy: Literal["striping", "packing", "load-aware", "fixed"] = "striping"
    scheduler_interval: float = Field(default=1.0, gt=0)
    # Monitoring: seconds between probes; missed probes before a host is ERROR; retention.
    monitor_interval: float = Field(default=10.0, gt=0)
    host_error_after: int = Field(default=3, ge=1)
    monitoring_retention_seconds: int = Field(default=86_400, ge=60)
    # Where the fake hypervisor keeps its pretend hosts (empty: $home/fake-hosts).
    fake_state_dir: str = ""
    # `up --local-host`: this machine's directory for node code and guests. It must be
    # searchable by others (unprivileged containers' roots pass through it).
    local_host_root: str = "/var/lib/edgecloud"
    # Run node actions through one long-lived agent per host (false: one command each).
    node_agents: bool = True
    # Provisioning: the driver serving each template `provider` (tests map local to fake);
    # AWS instances stood in by local namespace hosts (tests and demos against moto);
    # seconds a new host has to be MONITORED before its provision is ERROR.
    provision_drivers: dict[str, Literal["local", "onprem", "aws", "fake"]] = Field(
        default_factory=dict
    )
    provision_stand_in: bool = False
    # A second listener for OpenNebula clients (their default is host:2633, path /RPC2);
    # empty: /RPC2 only on `bind`.
    xmlrpc_bind: str = Field(default="", pattern=r"^(|\[?[0-9A-Za-z.:\-]+\]?:[0-9]{1,5})$")
    provision_host_timeout: float = Field(default=300.0, gt=0, le=3600)

    @property
    def db_url(self) -> str:
        """Return the SQLAlchemy URL of the store."""
        return self.db or f"sqlite:///{self.home / 'edgecloud.db'}"

    @property
    def auth_file(self) -> Path:
        """Return the path of the one_auth-style credentials file."""
        return self.home / "auth"

    @property
    def host_port(self) -> tuple[str, int]:
        """Split `bind` into address and port."""
        host, _, port = self.bind.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)


class ConfigError(Exception):
    """The configuration file or an EDGECLOUD_* variable is invalid."""


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the config file (if any), apply EDGECLOUD_* variables, then explicit overrides."""
    values: dict[str, Any] = {}
    home = Path(overrides["home"]) if overrides.get("home") else default_home()
    path = config_file or home / "edgecloud.toml"
    if path.exists():
        try:
            values.update(tomllib.loads(path.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    elif config_file is not None:
        raise ConfigError(f"{path}: no such file")
    for name in Settings.model_fields:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    values.setdefault("home", home)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(str(exc)) from exc
