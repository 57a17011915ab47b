"""Validate the VM template attributes the server reads itself: capacity, disks and NICs.

Input is what ``template_syntax.parse_template`` or ``parse_json_template`` returns
(upper-case keys, every value a string, a vector or a list of those). Attributes this
module does not know are user attributes and pass through unchanged.
"""

from __future__ import annotations

import copy
import ipaddress
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from edgecloud.server.errors import InvalidInput

HYPERVISORS = ("kvm", "lxc", "microvm")
VOLATILE_DISK_TYPES = ("fs", "swap")
DEFAULT_CPU = "1"
DEFAULT_MEMORY_MB = "128"
DEFAULT_HYPERVISOR = "kvm"
MAX_CPU = 1024
MAX_VCPU = 1024
MAX_MEMORY_MB = 16 * 1024 * 1024
MAX_DISK_MB = 1 << 40  # 1 EiB: far beyond any disk, well inside a BIGINT column
MAX_ID = 2**31 - 1  # object ids are INTEGER columns
MAX_NAME_LENGTH = 128

_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_MAC = re.compile(r"[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}", re.IGNORECASE)
_VECTOR_FORM = "must be a vector like [ KEY = value ]"


@dataclass(frozen=True)
class VmShape:
    """Hold the capacity a VM asks of a host, as read from a validated template."""

    cpu: float
    vcpu: int
    memory_mb: int
    hypervisor: str
    disk_mb: int = 0


def validate_vm_template(attrs: Mapping[str, Any], *, defaults: bool = True) -> dict[str, Any]:
    """Check and normalise a parsed template; raise InvalidInput naming the first bad field."""
    result: dict[str, Any] = copy.deepcopy(dict(attrs))
    for key, check in _CHECKS:
        if key in result:
            result[key] = check(f"template.{key}", result[key])
    if defaults:
        result.setdefault("CPU", DEFAULT_CPU)
        result.setdefault("VCPU", str(math.ceil(Decimal(result["CPU"]))))
        result.setdefault("MEMORY", DEFAULT_MEMORY_MB)
        result.setdefault("HYPERVISOR", DEFAULT_HYPERVISOR)
    return result


def vm_shape(attrs: Mapping[str, Any]) -> VmShape:
    """Read the capacity a validated template asks for; missing attributes take the defaults."""
    cpu = Decimal(attrs.get("CPU", DEFAULT_CPU))
    disks = attrs.get("DISK", [])
    return VmShape(
        cpu=float(cpu),
        vcpu=int(attrs.get("VCPU", math.ceil(cpu))),
        memory_mb=int(attrs.get("MEMORY", DEFAULT_MEMORY_MB)),
        hypervisor=str(attrs.get("HYPERVISOR", DEFAULT_HYPERVISOR)),
        disk_mb=sum(int(disk["SIZE"]) for disk in disks if "SIZE" in disk),
    )


# --- single values -------------------------------------------------------------------


def _single(field: str, value: object) -> str:
    """Return the value if it is one string; refuse vectors and repeated attributes."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        raise InvalidInput(field, f"must be given once, not {len(value)} times")
    if isinstance(value, Mapping):
        raise InvalidInput(field, "must be a single value, not a vector")
    raise InvalidInput(field, f"must be a string, not {type(value).__name__}")


def _whole(field: str, text: str, low: int, high: int) -> int:
    """Parse a decimal whole number and check it lies in [low, high]."""
    if not _DIGITS.fullmatch(text):
        raise InvalidInput(field, f"must be a whole number, got {text!r}")
    # A length check first: int() of a huge digit string is slow (and refused past 4300).
    number = int(text) if len(text) <= 20 else high + 1
    if not low <= number <= high:
        raise InvalidInput(field, f"must be between {low} and {high}, got {text}")
    return number


def _integer(field: str, value: object, low: int, high: int) -> str:
    return str(_whole(field, _single(field, value).strip(), low, high))


def _name(field: str, value: object) -> str:
    """Check a name: 1 to 128 characters, none of them a control character."""
    text = _single(field, value)
    if not 1 <= len(text) <= MAX_NAME_LENGTH:
        raise InvalidInput(field, f"must be 1 to {MAX_NAME_LENGTH} characters long")
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise InvalidInput(field, "must not contain control characters")
    return text


def _cpu(field: str, value: object) -> str:
    """Check CPU is a positive number up to MAX_CPU; keep it exact, without trailing zeros."""
    text = _single(field, value).strip()
    if len(text) > 32 or not _DECIMAL.fullmatch(text):
        raise InvalidInput(field, f"must be a number such as 0.5 or 2, got {text!r}")
    cpu = Decimal(text)
    if not 0 < cpu <= MAX_CPU:
        raise InvalidInput(field, f"must be more than 0 and at most {MAX_CPU}, got {text}")
    return format(cpu.normalize(), "f")


def _vcpu(field: str, value: object) -> str:
    return _integer(field, value, 1, MAX_VCPU)


def _memory(field: str, value: object) -> str:
    """Check MEMORY in MiB, also accepting an M or G suffix ("2G" is "2048")."""
    text = _single(field, value).strip()
    unit = text[-1:].upper()
    digits = text[:-1].rstrip() if unit in ("M", "G") else text
    factor = 1024 if unit == "G" else 1
    if not _DIGITS.fullmatch(digits):
        raise InvalidInput(field, f"must be whole MiB, optionally with an M or G suffix: {text!r}")
    memory = int(digits) * factor if len(digits) <= 20 else MAX_MEMORY_MB + 1
    if not 1 <= memory <= MAX_MEMORY_MB:
        raise InvalidInput(field, f"must be between 1 and {MAX_MEMORY_MB} MiB, got {text}")
    return str(memory)


def _hypervisor(field: str, value: object) -> str:
    text = _single(field, value).strip().lower()
    if text not in HYPERVISORS:
        raise InvalidInput(field, f"must be one of {', '.join(HYPERVISORS)}, got {text!r}")
    return text


def _ipv4(field: str, value: object) -> str:
    text = _single(field, value).strip()
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise InvalidInput(field, f"must be an IPv4 address, got {text!r}") from None


def _mac(field: str, value: object) -> str:
    """Check a MAC address and write it lower-case with colons."""
    text = _single(field, value).strip()
    if not _MAC.fullmatch(text):
        raise InvalidInput(field, f"must be a MAC address like 02:00:0a:00:00:01, got {text!r}")
    return text.lower().replace("-", ":")


def _id_list(field: str, value: object) -> str:
    """Check a comma-separated list of ids ("1,2"), dropping repeats and spaces."""
    parts = [part.strip() for part in _single(field, value).split(",")]
    ids = [_whole(field, part, 0, MAX_ID) for part in parts]
    return ",".join(str(i) for i in dict.fromkeys(ids))


# --- vectors -------------------------------------------------------------------------


def _vector(field: str, value: object) -> dict[str, Any]:
    """Return a copy of a vector attribute; refuse single values and repeats."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list):
        raise InvalidInput(field, f"must be given once, not {len(value)} times")
    raise InvalidInput(field, _VECTOR_FORM)


def _vectors(field: str, value: object) -> list[Any]:
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return value
    raise InvalidInput(field, _VECTOR_FORM)


def _reference(field: str, vector: dict[str, Any], id_key: str, name_key: str) -> bool:
    """Check a vector names its object by id or by name (not both); tell if it names one."""
    if id_key in vector and name_key in vector:
        raise InvalidInput(field, f"give {id_key} or {name_key}, not both")
    if id_key in vector:
        vector[id_key] = _integer(f"{field}.{id_key}", vector[id_key], 0, MAX_ID)
    elif name_key in vector:
        vector[name_key] = _name(f"{field}.{name_key}", vector[name_key])
    return id_key in vector or name_key in vector


def _disks(field: str, value: object) -> list[dict[str, Any]]:
    return [_disk(f"{field}[{i}]", item) for i, item in enumerate(_vectors(field, value))]


def _disk(field: str, item: object) -> dict[str, Any]:
    """Check a disk: an image by IMAGE_ID or IMAGE, or a volatile fs/swap disk with SIZE."""
    disk = _vector(field, item)
    if not _reference(field, disk, "IMAGE_ID", "IMAGE"):
        _volatile(field, disk)
    if "SIZE" in disk:
        disk["SIZE"] = _integer(f"{field}.SIZE", disk["SIZE"], 1, MAX_DISK_MB)
    return disk


def _volatile(field: str, disk: dict[str, Any]) -> None:
    if "TYPE" not in disk:
        raise InvalidInput(field, "needs IMAGE_ID, IMAGE, or TYPE (fs or swap) with SIZE")
    kind = _single(f"{field}.TYPE", disk["TYPE"]).strip().lower()
    if kind not in VOLATILE_DISK_TYPES:
        raise InvalidInput(f"{field}.TYPE", f"must be fs or swap without an image, got {kind!r}")
    if "SIZE" not in disk:
        raise InvalidInput(f"{field}.SIZE", "is required for a volatile disk")
    disk["TYPE"] = kind


def _nics(field: str, value: object) -> list[dict[str, Any]]:
    return [_nic(f"{field}[{i}]", item) for i, item in enumerate(_vectors(field, value))]


def _nic(field: str, item: object) -> dict[str, Any]:
    """Check a NIC: a vnet by NETWORK_ID or NETWORK, and its optional IP, MAC and groups."""
    nic = _vector(field, item)
    if not _reference(field, nic, "NETWORK_ID", "NETWORK"):
        raise InvalidInput(field, "needs NETWORK_ID or NETWORK")
    for key, check in _NIC_CHECKS:
        if key in nic:
            nic[key] = check(f"{field}.{key}", nic[key])
    return nic


_Check = Callable[[str, Any], Any]

_NIC_CHECKS: tuple[tuple[str, _Check], ...] = (
    ("IP", _ipv4),
    ("MAC", _mac),
    ("SECURITY_GROUPS", _id_list),
)

# The order is the order problems are reported in.
_CHECKS: tuple[tuple[str, _Check], ...] = (
    ("NAME", _name),
    ("CPU", _cpu),
    ("VCPU", _vcpu),
    ("MEMORY", _memory),
    ("HYPERVISOR", _hypervisor),
    ("DISK", _disks),
    ("NIC", _nics),
    ("CONTEXT", _vector),
    ("OS", _vector),
    ("GRAPHICS", _vector),
    ("SCHED_REQUIREMENTS", _single),
    ("SCHED_RANK", _single),
)
