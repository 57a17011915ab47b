"""Settings, connection and errors of the `aws` provider (see `aws`)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from edgecloud.drivers.base import DriverError

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

__all__ = [
    "AwsSettings",
    "Cipher",
    "aws_errors",
    "connect",
    "error_code",
    "parse_settings",
    "read_record",
    "write_record",
]

RECORD = "aws.json"  # <state_dir>/<provision id>/aws.json: how to reach the provision's cloud

# Short network timeouts and few retries: a broken endpoint fails in seconds, not minutes.
_CLIENT_CONFIG = Config(
    connect_timeout=5,
    read_timeout=30,
    retries={"max_attempts": 3, "mode": "standard"},
)


@dataclass(frozen=True)
class AwsSettings:
    """The provider settings of an `aws` provision, checked."""

    region: str
    access_key_id: str
    secret_access_key: str
    ami: str
    endpoint_url: str | None = None
    instance_type: str = "t3.medium"
    vpc_cidr: str = "10.100.0.0/16"
    subnet_cidr: str = "10.100.1.0/24"
    ssh_cidr: str = "0.0.0.0/0"
    availability_zone: str | None = None
    public_ips: bool = True

    def __repr__(self) -> str:  # never print the secret
        return f"AwsSettings(region={self.region!r}, endpoint_url={self.endpoint_url!r}, ...)"


_REQUIRED = ("region", "access_key_id", "secret_access_key", "ami")
_KNOWN = tuple(f.name for f in fields(AwsSettings))
_BOOLEANS = {"true": True, "yes": True, "false": False, "no": False}


def parse_settings(settings: Mapping[str, Any]) -> AwsSettings:
    """Check the template's provider settings; `DriverError` names the key that is wrong."""
    unknown = sorted(set(settings) - set(_KNOWN))
    if unknown:
        raise DriverError(
            f"aws provider: unknown setting(s) {', '.join(map(str, unknown))} "
            f"(known: {', '.join(_KNOWN)})"
        )
    missing = [key for key in _REQUIRED if settings.get(key) in (None, "")]
    if missing:
        raise DriverError(f"aws provider: missing setting(s) {', '.join(missing)}")
    values: dict[str, Any] = {}
    for key in _KNOWN:
        value = settings.get(key)
        if value is None or (value == "" and key not in _REQUIRED):
            continue  # an optional setting left empty (a template input's "" default)
        if key == "public_ips":
            if isinstance(value, str) and value.lower() in _BOOLEANS:
                value = _BOOLEANS[value.lower()]
            if not isinstance(value, bool):
                raise DriverError("aws provider: setting public_ips must be true or false")
        elif not isinstance(value, str) or not value.strip() or value != value.strip():
            raise DriverError(f"aws provider: setting {key} must be a non-empty string")
        values[key] = value
    parsed = AwsSettings(**values)
    vpc = _network("vpc_cidr", parsed.vpc_cidr)
    subnet = _network("subnet_cidr", parsed.subnet_cidr)
    _network("ssh_cidr", parsed.ssh_cidr)
    if not subnet.subnet_of(vpc):
        raise DriverError(f"aws provider: setting subnet_cidr {subnet} is not within {vpc}")
    endpoint = parsed.endpoint_url
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise DriverError("aws provider: setting endpoint_url must be an http(s):// URL")
    return parsed


def _network(key: str, text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text)
    except ValueError as e:
        raise DriverError(f"aws provider: setting {key}: {e}") from None


# --- the connection record ----------------------------------------------------------


# Encrypts and decrypts the record (the front-end gives its secrets key): with one, the
# secret access key is never on disk in the clear.
Cipher = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]


def read_record(directory: Path, cipher: Cipher | None = None) -> AwsSettings | None:
    """The settings recorded for a provision (None: it never reached AWS from here)."""
    try:
        raw = (directory / RECORD).read_bytes()
        data = json.loads(cipher[1](raw) if cipher is not None else raw)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return AwsSettings(**{k: v for k, v in data.items() if k in _KNOWN})
    except TypeError:
        return None


def write_record(directory: Path, settings: AwsSettings, cipher: Cipher | None = None) -> None:
    """Record the settings (they hold the secret key: 0600 in a 0700 directory, and
    encrypted when a cipher is given)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    temporary = directory / (RECORD + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    data = json.dumps(asdict(settings), indent=1, sort_keys=True).encode() + b"\n"
    with os.fdopen(fd, "wb") as out:
        out.write(cipher[0](data) if cipher is not None else data)
    temporary.replace(directory / RECORD)


# --- the client and its errors -------------------------------------------------------

_current = threading.local()  # the operation the calling thread sent last, for messages


def _note_operation(model: Any = None, **_: Any) -> None:
    _current.operation = getattr(model, "name", "")


def connect(settings: AwsSettings) -> EC2Client:
    """An EC2 client for the settings' region, credentials and endpoint."""
    with aws_errors():
        session = boto3.session.Session(
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            region_name=settings.region,
        )
        client = session.client("ec2", endpoint_url=settings.endpoint_url, config=_CLIENT_CONFIG)
    client.meta.events.register("before-call.ec2", _note_operation)
    return client


@contextlib.contextmanager
def aws_errors() -> Iterator[None]:
    """Turn what boto3 raises into `DriverError` with the cloud's code and message verbatim:
    "aws: RunInstances: InvalidAMIID.NotFound: The image id '[ami-nope]' does not exist"."""
    _current.operation = ""
    try:
        yield
    except ClientError as e:
        error = e.response.get("Error", {})
        code, message = error.get("Code", "Unknown"), error.get("Message", "")
        raise DriverError(f"aws: {e.operation_name}: {code}: {message}") from e
    except BotoCoreError as e:
        operation = getattr(_current, "operation", "")
        raise DriverError(f"aws: {operation}: {e}" if operation else f"aws: {e}") from e


def error_code(error: ClientError) -> str:
    """The cloud's code of an error ("InvalidInstanceID.NotFound")."""
    return str(error.response.get("Error", {}).get("Code", ""))
