"""Wire types of clusters, hosts and datastores."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from edgecloud.api.common import Body, Cpu, Id, Mib, Name, Ownership, TemplateIn, Wire

HypervisorKind = Literal["kvm", "lxc", "microvm", "fake"]
TransportKind = Literal["ssh", "local"]
Address = Annotated[str, Field(max_length=255, pattern=r"^[A-Za-z0-9.:_\-\[\]]*$")]
HostRoot = Annotated[str, Field(min_length=2, max_length=200, pattern=r"^/[A-Za-z0-9._/\-]+$")]
HostKey = Annotated[
    str,
    Field(max_length=4096, pattern=r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+"),
]
HOST_STATES = {
    0: "INIT",
    1: "MONITORING_MONITORED",
    2: "MONITORED",
    3: "ERROR",
    4: "DISABLED",
    5: "MONITORING_ERROR",
    6: "MONITORING_INIT",
    7: "MONITORING_DISABLED",
    8: "OFFLINE",
}


class ClusterCreate(Body):
    """Create a cluster (an edge site)."""

    name: Name
    reserved_cpu: Cpu = 0.0
    reserved_memory_mb: Mib = 0
    recreate_on_host_failure: bool = Field(
        default=False, description="recreate the VMs of a failed host on other hosts"
    )
    host_failure_grace: int = Field(default=60, ge=0, le=86_400, description="seconds")
    template: TemplateIn = Field(default_factory=dict)


class ClusterUpdate(Body):
    """Change a cluster's reservations, failure policy or attributes."""

    reserved_cpu: Cpu | None = None
    reserved_memory_mb: Mib | None = None
    recreate_on_host_failure: bool | None = None
    host_failure_grace: int | None = Field(default=None, ge=0, le=86_400)
    template: TemplateIn | None = None
    version: int | None = None


class Cluster(Ownership):
    """A cluster with the ids of its hosts, datastores and vnets."""

    reserved_cpu: float
    reserved_memory_mb: int
    recreate_on_host_failure: bool = False
    host_failure_grace: int = 60
    host_ids: list[int] = Field(default_factory=list)
    datastore_ids: list[int] = Field(default_factory=list)
    vnet_ids: list[int] = Field(default_factory=list)


class HostCreate(Body):
    """Register a host; capacity is declared here and refreshed by the monitor."""

    name: Name
    cluster_id: Id = 0
    hypervisor: HypervisorKind = "kvm"
    total_cpu: Cpu = 0.0
    total_memory_mb: Mib = 0
    template: TemplateIn = Field(default_factory=dict)
    transport: TransportKind = Field(
        default="ssh", description="ssh: reach the host over SSH; local: this machine"
    )
    address: Address = Field(default="", description="SSH address; defaults to the name")
    port: int = Field(default=22, ge=1, le=65535)
    root: HostRoot = Field(
        default="/var/lib/edgecloud", description="the host's directory for node code and guests"
    )
    host_key: HostKey | None = Field(
        default=None,
        description="the SSH host key to pin (OpenSSH format); pinned on first contact if omitted",
    )


class HostUpdate(Body):
    """Move a host to another cluster or change its attributes."""

    cluster_id: Id | None = None
    total_cpu: Cpu | None = None
    total_memory_mb: Mib | None = None
    template: TemplateIn | None = None
    version: int | None = None


class HostStatus(Body):
    """Enable, disable or set offline a host (OpenNebula's one.host.status)."""

    status: Literal["enabled", "disabled", "offline"]


class Host(Ownership):
    """A host, its state and capacity."""

    cluster_id: int
    hypervisor: str
    state: int
    state_name: str
    total_cpu: float
    total_memory_mb: int
    used_cpu: float
    used_memory_mb: int
    running_vms: int
    last_seen: int | None
    free_disk_mb: int = 0
    fenced: bool = Field(default=False, description="failed; its VMs were recreated elsewhere")
    transport: str = "ssh"
    address: str = ""
    port: int = 22
    root: str = ""
    host_key: str | None = None
    node_version: str = ""
    hypervisors: list[str] = Field(default_factory=list)
    last_error: str = ""


DatastoreKind = Literal["image", "system", "file"]


class DatastoreCreate(Body):
    """Create a datastore and make it available in clusters."""

    name: Name
    kind: DatastoreKind
    driver: Literal["fs"] = "fs"
    transfer: Literal["ssh", "local", "shared"] = "ssh"
    cluster_ids: list[Id] = Field(default_factory=lambda: [0], max_length=1024)
    total_mb: Mib = 0
    template: TemplateIn = Field(default_factory=dict)


class DatastoreUpdate(Body):
    """Change a datastore's attributes."""

    template: TemplateIn | None = None
    version: int | None = None


class Datastore(Ownership):
    """A datastore and the clusters that see it."""

    kind: str
    driver: str
    transfer: str
    total_mb: int
    free_mb: int
    cluster_ids: list[int] = Field(default_factory=list)


class ClusterMember(Wire):
    """The ids a cluster link call changed."""

    cluster_id: int
    object_id: int


class ClusterSummary(Wire):
    """A cluster on the dashboard: where it is and how full its hosts are."""

    id: int
    name: str
    provider: str = Field(description="the provision's provider, the PROVIDER attribute, or onprem")
    site: str = Field(description="the SITE attribute, or the cluster's name")
    hosts: int
    total_cpu: float
    used_cpu: float
    total_memory_mb: int
    used_memory_mb: int


class Summary(Wire):
    """What the caller may see, counted: VMs (DONE left out) and hosts by state, capacity."""

    vms_by_state: dict[str, int]
    hosts_by_state: dict[str, int]
    clusters: list[ClusterSummary]
    total_cpu: float
    used_cpu: float
    total_memory_mb: int
    used_memory_mb: int
