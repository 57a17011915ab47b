"""Wire types of images, VM templates, VMs and operations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from edgecloud.api.common import Body, Id, Mib, Name, Ownership, TemplateIn, Wire

ImageKind = Literal["OS", "CDROM", "DATABLOCK", "KERNEL", "RAMDISK", "CONTEXT"]
IMAGE_STATES = {
    0: "INIT",
    1: "READY",
    2: "USED",
    3: "DISABLED",
    4: "LOCKED",
    5: "ERROR",
    6: "CLONE",
    7: "DELETE",
    8: "USED_PERS",
    9: "LOCKED_USED",
    10: "LOCKED_USED_PERS",
}


class ImageCreate(Body):
    """Register an image record in an image datastore."""

    name: Name
    datastore_id: Id = 1
    kind: ImageKind = "OS"
    persistent: bool = False
    size_mb: Mib = 0
    # With something to copy, "auto" (the default then) takes the format of the bytes.
    format: Literal["auto", "raw", "qcow2", "dir"] | None = None
    # Where the bytes come from; at most one. `path`: a path on the hosts, used in place
    # (administrators). `import_path`: a file on the front-end, copied into the datastore
    # (administrators). `url`: http(s), downloaded. `upload`: PUT /images/{id}/upload.
    path: str = Field(default="", max_length=1024, pattern=r"^[^\x00]*$")
    import_path: str = Field(default="", max_length=1024, pattern=r"^(/[^\x00]*)?$")
    url: str = Field(default="", max_length=2048, pattern=r"^(https?://[^\x00\s]+)?$")
    upload: bool = False
    # sha256:<hex> the copied bytes must have.
    checksum: str = Field(default="", pattern=r"^((sha256:)?[0-9a-fA-F]{64})?$")
    template: TemplateIn = Field(default_factory=dict)


class ImageClone(Body):
    """Copy an image into a new one (in the same datastore, or another image datastore)."""

    name: Name
    datastore_id: Id | None = None


class ImageUpdate(Body):
    """Change an image's attributes or persistence."""

    persistent: bool | None = None
    kind: ImageKind | None = None
    template: TemplateIn | None = None
    version: int | None = None


class Image(Ownership):
    """An image record."""

    datastore_id: int
    kind: str
    state: int
    state_name: str
    persistent: bool
    size_mb: int
    format: str
    path: str
    source: str
    running_vms: int
    checksum: str = ""
    origin: str = ""
    last_error: str = ""
    bytes: int = 0


class VmTemplateCreate(Body):
    """Create a VM template; `name` defaults to the template's NAME."""

    name: Name | None = None
    template: TemplateIn


class VmTemplateUpdate(Body):
    """Replace the template's attributes (or merge them with `merge`)."""

    name: Name | None = None
    template: TemplateIn | None = None
    merge: bool = False
    version: int | None = None


class VmTemplate(Ownership):
    """A stored VM template."""


class Instantiate(Body):
    """Create a VM from a template, optionally overriding attributes."""

    name: Name | None = None
    hold: bool = False
    template: TemplateIn = Field(default_factory=dict)


class VmCreate(Body):
    """Create a VM from a full template, or from a stored one plus overrides."""

    name: Name | None = None
    template_id: Id | None = None
    hold: bool = False
    template: TemplateIn = Field(default_factory=dict)


class VmUpdate(Body):
    """Rename a VM or change its user attributes."""

    name: Name | None = None
    user_template: TemplateIn | None = None
    version: int | None = None


VmActionName = Literal[
    "deploy",
    "hold",
    "release",
    "poweroff",
    "resume",
    "reboot",
    "suspend",
    "stop",
    "undeploy",
    "terminate",
    "resched",
    "unresched",
    "migrate",
    "recover",
]


class VmAction(Body):
    """Ask for a lifecycle action."""

    action: VmActionName
    hard: bool = False
    host_id: Id | None = Field(default=None, description="deploy/migrate target")
    live: bool = False
    recover: Literal["success", "failure", "retry", "delete", "recreate"] | None = None
    nic_map: dict[str, Id] | None = Field(
        default=None,
        description="migrate to another cluster: NIC_ID -> a vnet of the target's cluster",
    )


class NicAttach(Body):
    """Attach a NIC: a vnet (by id or name), optionally the address and security groups."""

    network_id: Id | None = Field(default=None, description="the vnet (or give `network`)")
    network: Name | None = Field(default=None, description="the vnet's name")
    ip: str | None = Field(default=None, min_length=1, max_length=64)
    mac: str | None = Field(default=None, min_length=1, max_length=64)
    security_groups: list[Id] = Field(
        default_factory=list, max_length=64, description="on top of the vnet's own"
    )


class Nic(Wire):
    """A VM's NIC and its lease."""

    nic_id: int
    vnet_id: int
    lease_id: int
    mac: str
    ip: str | None
    ip6: str | None
    security_groups: list[int]


class VmShort(Wire):
    """The short form used in lists."""

    id: int
    name: str
    owner_id: int
    group_id: int
    state: int
    lcm_state: int
    hypervisor: str
    cpu: float
    memory_mb: int
    host_id: int | None


class Vm(Ownership):
    """A VM with its state (OpenNebula numbers and names), resources and NICs."""

    template_id: int | None
    state: int
    state_name: str
    lcm_state: int
    lcm_state_name: str
    hypervisor: str
    cpu: float
    vcpu: int
    memory_mb: int
    disk_mb: int
    host_id: int | None
    cluster_id: int | None
    deploy_id: str
    updated_at: int
    error: str = Field(default="", description="why the last action failed, or why it waits")
    resched: bool = False
    runtime: dict[str, Any] = Field(
        default_factory=dict,
        description="how the guest runs, as its host reports it: accel (kvm|tcg), privileged (lxc)",
    )
    user_template: dict[str, Any] = Field(default_factory=dict)
    nics: list[Nic] = Field(default_factory=list)


class HistoryRecord(Wire):
    """One thing that happened to a VM."""

    action: str
    user_id: int | None
    host_id: int | None
    state: int
    lcm_state: int
    at: int
    detail: str


class OperationStep(Wire):
    """One step of an operation."""

    seq: int
    name: str
    state: str
    error: str
    started_at: int | None
    ended_at: int | None


class Operation(Wire):
    """A long action: poll it until `state` is done, failed or rolled_back."""

    id: int
    kind: str
    object_type: str
    object_id: int
    owner_id: int
    state: str
    params: dict[str, Any]
    error: str
    created_at: int
    updated_at: int
    steps: list[OperationStep] = Field(default_factory=list)


class Sample(Wire):
    """Monitoring figures of a host or VM at one time."""

    at: int
    cpu: float
    memory_mb: int
    net_rx: int = 0
    net_tx: int = 0


class VmActionAccepted(Wire):
    """The answer to an action: the VM now, and the operation carrying it out (if any)."""

    vm: Vm
    operation: Operation | None = None


class ConsoleLog(Wire):
    """The tail of a guest's console output (serial console of a VM, console of a container)."""

    vm_id: int
    text: str


SnapshotName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class DiskSnapshotCreate(Body):
    """Take a snapshot of a VM's disk (qcow2: internal snapshot)."""

    name: SnapshotName


class DiskSnapshot(Wire):
    """One snapshot of a disk."""

    name: str
    id: str = ""
    date: float = 0.0
    vm_state_size: int = 0


class DiskSaveAs(Body):
    """Copy a powered-off VM's disk, flattened, into a new image."""

    name: Name
    datastore_id: Id | None = None


class DiskAttach(Body):
    """Attach a disk: an image (by id or name), or a new volatile disk of `size_mb`."""

    image_id: Id | None = None
    image: Name | None = Field(default=None, description="the image's name")
    type: Literal["fs", "swap"] | None = Field(
        default=None, description="a volatile disk (give size_mb, and fs for fs)"
    )
    size_mb: int | None = Field(default=None, ge=1, le=16 * 1024 * 1024)
    fs: Literal["raw", "ext4"] | None = None


class DiskResize(Body):
    """Grow a disk (never shrink)."""

    size_mb: int = Field(ge=1, le=16 * 1024 * 1024)


class VmResize(Body):
    """New CPU, VCPU and/or memory of a VM that runs nowhere right now (OpenNebula's
    one.vm.resize): powered off (its host keeps room for the new size, checked unless
    `enforce` is false, which administrators may ask), undeployed, pending or on hold."""

    cpu: float | None = Field(default=None, gt=0, le=1024)
    vcpu: int | None = Field(default=None, ge=1, le=1024)
    memory_mb: int | None = Field(default=None, ge=1, le=16 * 1024 * 1024)
    enforce: bool = True


class VmUpdateConf(Body):
    """New OS, FEATURES, INPUT, GRAPHICS, RAW, CPU_MODEL or CONTEXT sections (OpenNebula's
    one.vm.updateconf) of a VM that runs nowhere right now; each given section replaces
    the VM's (with `merge`, its attributes are merged into it)."""

    template: TemplateIn
    merge: bool = False
