"""Tables of what runs: images, VM templates, VMs, their history, and operations."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from edgecloud.server.db.base import Base, Epoch, Json, Owned, Versioned


class Image(Owned, Base):
    """A disk image record in an image datastore; states follow OpenNebula's ImageState."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)
    datastore_id: Mapped[int] = mapped_column(
        ForeignKey("datastores.id"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="OS")
    state: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    persistent: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    size_mb: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    format: Mapped[str] = mapped_column(String(16), nullable=False, default="raw")
    path: Mapped[str] = mapped_column(String(1024), nullable=False, default="")
    source: Mapped[str] = mapped_column(String(1024), nullable=False, default="")
    running_vms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Images held in a datastore: "sha256:<hex>" of the stored bytes, where they came
    # from (a file, a URL, "upload", "image:<id>"), and why the last import failed.
    checksum: Mapped[str] = mapped_column(String(80), nullable=False, default="")
    origin: Mapped[str] = mapped_column(String(2048), nullable=False, default="")
    last_error: Mapped[str] = mapped_column(Text, nullable=False, default="")
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class VmTemplate(Owned, Base):
    """A VM template: parsed OpenNebula attributes, instantiated into VMs."""

    __tablename__ = "vm_templates"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)


class Vm(Owned, Base):
    """A virtual machine or container; STATE and LCM_STATE use OpenNebula's numbers."""

    __tablename__ = "vms"
    __table_args__ = (
        Index("ix_vms_state_id", "state", "id"),
        Index("ix_vms_owner_state", "owner_id", "state"),
    )
    template_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    lcm_state: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    hypervisor: Mapped[str] = mapped_column(String(16), nullable=False)
    cpu: Mapped[float] = mapped_column(Float, nullable=False)
    vcpu: Mapped[int] = mapped_column(Integer, nullable=False)
    memory_mb: Mapped[int] = mapped_column(Integer, nullable=False)
    disk_mb: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    host_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    cluster_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    deploy_id: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    user_template: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    updated_at: Mapped[int] = mapped_column(Epoch, nullable=False, default=0)
    ended_at: Mapped[int | None] = mapped_column(Epoch, nullable=True)
    error: Mapped[str] = mapped_column(Text, nullable=False, default="")
    resched: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Set while a STOPPED or UNDEPLOYED VM waits in PENDING to be resumed on a host.
    resume_from: Mapped[str] = mapped_column(String(16), nullable=False, default="")
    # What the host reported about how the guest runs: accel (kvm/tcg), privileged (lxc).
    runtime: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)


class VmHistory(Base):
    """One record of what happened to a VM: action, who, where, when."""

    __tablename__ = "vm_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    vm_id: Mapped[int] = mapped_column(
        ForeignKey("vms.id", ondelete="CASCADE"), nullable=False, index=True
    )
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    host_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[int] = mapped_column(Integer, nullable=False)
    lcm_state: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[int] = mapped_column(Epoch, nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="")


class Operation(Versioned, Base):
    """A long action, run as persisted steps; clients poll it by id."""

    __tablename__ = "operations"
    __table_args__ = (Index("ix_operations_state_id", "state", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    object_type: Mapped[str] = mapped_column(String(16), nullable=False)
    object_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    owner_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    params: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    error: Mapped[str] = mapped_column(Text, nullable=False, default="")
    updated_at: Mapped[int] = mapped_column(Epoch, nullable=False, default=0)
    # Which front-end worker runs it, until when; an expired lease means its worker died.
    claimed_by: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    lease_until: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    ended_at: Mapped[int | None] = mapped_column(Epoch, nullable=True)


class OperationStep(Base):
    """One step of an operation, with its own state and error."""

    __tablename__ = "operation_steps"
    __table_args__ = (UniqueConstraint("operation_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    operation_id: Mapped[int] = mapped_column(
        ForeignKey("operations.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    error: Mapped[str] = mapped_column(Text, nullable=False, default="")
    started_at: Mapped[int | None] = mapped_column(Epoch, nullable=True)
    ended_at: Mapped[int | None] = mapped_column(Epoch, nullable=True)


class HostSample(Base):
    """Monitoring figures of a host at one time (kept for the retention window)."""

    __tablename__ = "host_samples"
    __table_args__ = (Index("ix_host_samples_host_at", "host_id", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host_id: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[int] = mapped_column(Epoch, nullable=False, index=True)
    used_cpu: Mapped[float] = mapped_column(Float, nullable=False)
    used_memory_mb: Mapped[int] = mapped_column(BigInteger, nullable=False)


class VmSample(Base):
    """Monitoring figures of a VM at one time (kept for the retention window)."""

    __tablename__ = "vm_samples"
    __table_args__ = (Index("ix_vm_samples_vm_at", "vm_id", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    vm_id: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[int] = mapped_column(Epoch, nullable=False, index=True)
    cpu: Mapped[float] = mapped_column(Float, nullable=False)
    memory_mb: Mapped[int] = mapped_column(BigInteger, nullable=False)
    net_rx: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    net_tx: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
