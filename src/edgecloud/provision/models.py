"""The parts of a provision template as pydantic models: an unknown key is an error."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator

from edgecloud.api.common import Cpu, Mib, Name
from edgecloud.api.infra import DatastoreKind, HypervisorKind
from edgecloud.api.workload import ImageKind

MAX_HOSTS = 64
MAX_ITEMS = 64  # datastores, networks, images, VM templates, inputs
ProviderKind = Literal["local", "onprem", "aws"]
InputType = Literal["text", "number", "boolean", "list", "password"]
NetworkDriver = Literal["bridge", "vxlan", "evpn"]
Scalar = str | bool | int | float
CHECKSUM_DIGITS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}


def _scalar(value: object) -> Scalar:
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise ValueError("must be text, a number or true/false")


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


def _input_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}", value):
        raise ValueError("must be letters, digits, '_' or '-', starting with a letter or '_'")
    return value


def _ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError("not an IPv4 address") from None


def _address(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.:_\-\[\]]{1,255}", value):
        raise ValueError("not an IP address or host name")
    return value


def _url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s\x00]+", value) or len(value) > 2048:
        raise ValueError("must be an http:// or https:// URL")
    return value


def _checksum(value: str) -> str:
    algorithm, _, digest = value.partition(":")
    digits = CHECKSUM_DIGITS.get(algorithm.lower())
    if digits is None or not re.fullmatch(rf"[0-9a-fA-F]{{{digits}}}", digest):
        raise ValueError("must be md5:, sha1:, sha256: or sha512: and the hex digest")
    return f"{algorithm.lower()}:{digest.lower()}"


ScalarValue = Annotated[Scalar, PlainValidator(_scalar)]
Whole = BeforeValidator(_not_bool)
HostCount = Annotated[int, Field(ge=1, le=MAX_HOSTS), Whole]
HostIndex = Annotated[int, Field(ge=0), Whole]
InputName = Annotated[str, AfterValidator(_input_name)]
Ipv4 = Annotated[str, AfterValidator(_ipv4)]
HostAddress = Annotated[str, AfterValidator(_address)]
Url = Annotated[str, AfterValidator(_url)]
Checksum = Annotated[str, AfterValidator(_checksum)]


class Spec(BaseModel):
    """One part of a template: unknown keys are errors; numbers are accepted as text."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class InputSpec(Spec):
    """A value the template asks for: given when validating or creating, else its default."""

    name: InputName
    type: InputType = "text"
    default: ScalarValue | None = None
    description: str = Field(default="", max_length=1024)
    options: list[ScalarValue] | None = Field(default=None, min_length=1, max_length=256)


class ClusterSpec(Spec):
    """The cluster the provision's hosts, datastores and networks go in."""

    name: Name
    reserved_cpu: Cpu = 0.0
    reserved_memory_mb: Annotated[Mib, Whole] = 0


class HostsSection(Spec):
    """The hosts as written: `count` of them (local, aws), or their `addresses` (onprem)."""

    count: HostCount | None = None
    addresses: list[HostAddress] | None = Field(default=None, min_length=1, max_length=MAX_HOSTS)
    hypervisors: list[HypervisorKind] = Field(min_length=1, max_length=4)
    name: Name | None = None  # a pattern: ${index} is the host's index, from 0


class HostSpec(Spec):
    """One host to create (or, onprem, to set up at its address)."""

    index: int
    name: str
    address: str | None
    hypervisors: list[HypervisorKind]


class DatastoreSpec(Spec):
    """A datastore; a system one may name (by index) the host that keeps the image replica."""

    name: Name
    kind: DatastoreKind
    replica_host: HostIndex | None = None


class AddressRangeSpec(Spec):
    """An IPv4 address range: `size` addresses from `ip` up."""

    ip: Ipv4
    size: Annotated[int, Field(ge=1, le=16_777_216), Whole]

    @property
    def last_ip(self) -> str:
        """Return the range's last address."""
        return str(ipaddress.IPv4Address(self.ip) + self.size - 1)


class NetworkSpec(Spec):
    """A virtual network; a public one reaches outside the edge site."""

    name: Name
    driver: NetworkDriver
    public: bool = False
    address_range: AddressRangeSpec


class ImageSpec(Spec):
    """An image downloaded into an image datastore (default: the first one)."""

    name: Name
    url: Url
    checksum: Checksum | None = None
    kind: ImageKind = "OS"
    datastore: Name | None = None


class VmTemplateSpec(Spec):
    """A VM template: OpenNebula attributes, as the REST API takes them."""

    name: Name
    template: dict[str, Any]


class Document(Spec):
    """A template as written, after substitution, without its inputs."""

    name: Name
    provider: ProviderKind
    provider_settings: dict[str, ScalarValue] = Field(default_factory=dict, max_length=256)
    cluster: ClusterSpec
    hosts: HostsSection
    datastores: list[DatastoreSpec] = Field(default_factory=list, max_length=MAX_ITEMS)
    networks: list[NetworkSpec] = Field(default_factory=list, max_length=MAX_ITEMS)
    images: list[ImageSpec] = Field(default_factory=list, max_length=MAX_ITEMS)
    vm_templates: list[VmTemplateSpec] = Field(default_factory=list, max_length=MAX_ITEMS)


class ProvisionTemplate(Spec):
    """A valid, resolved template: everything needed to create the provision."""

    name: str
    provider: ProviderKind
    provider_settings: dict[str, Scalar]
    cluster: ClusterSpec
    hosts: list[HostSpec]
    datastores: list[DatastoreSpec]
    networks: list[NetworkSpec]
    images: list[ImageSpec]
    vm_templates: list[VmTemplateSpec]
