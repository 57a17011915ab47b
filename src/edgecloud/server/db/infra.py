"""Tables of where: clusters, hosts, datastores."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from edgecloud.server.db.base import Base, Epoch, Json, Owned


class Cluster(Owned, Base):
    """An edge site: hosts plus the datastores and vnets they share."""

    __tablename__ = "clusters"
    __table_args__ = (UniqueConstraint("name"),)
    reserved_cpu: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    reserved_memory_mb: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # Host failure policy: recreate the VMs of a host in ERROR after a grace period.
    recreate_on_host_failure: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    host_failure_grace: Mapped[int] = mapped_column(Integer, nullable=False, default=60)


class Host(Owned, Base):
    """A Linux machine that runs workloads; state numbers follow OpenNebula's HostState."""

    __tablename__ = "hosts"
    __table_args__ = (UniqueConstraint("name"),)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"), nullable=False, index=True)
    hypervisor: Mapped[str] = mapped_column(String(16), nullable=False)
    state: Mapped[int] = mapped_column(Integer, nullable=False, default=0, index=True)
    total_cpu: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    total_memory_mb: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    used_cpu: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    used_memory_mb: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    running_vms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_seen: Mapped[int | None] = mapped_column(Epoch, nullable=True)
    free_disk_mb: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    missed_probes: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error_since: Mapped[int | None] = mapped_column(Epoch, nullable=True)
    # Set when the host failed and its VMs were recreated elsewhere: they must never be
    # resumed here. Cleared by an admin re-enabling the host.
    fenced: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # How the front-end reaches the host: "ssh" to address:port, or "local" (this machine).
    transport: Mapped[str] = mapped_column(String(8), nullable=False, default="ssh")
    address: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    port: Mapped[int] = mapped_column(Integer, nullable=False, default=22)
    # The SSH host key, pinned on first contact (or given at add); a change is refused.
    host_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The host's directory tree for node code, guests and the system datastore.
    root: Mapped[str] = mapped_column(String(1024), nullable=False, default="/var/lib/edgecloud")
    node_version: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    # Guest kinds the host's probe found installed (a kvm host may also run lxc, microvm).
    hypervisors: Mapped[list[str]] = mapped_column(Json, nullable=False, default=list)
    last_error: Mapped[str] = mapped_column(Text, nullable=False, default="")


class Datastore(Owned, Base):
    """Where images live (kind image) or where running disks live on hosts (kind system)."""

    __tablename__ = "datastores"
    __table_args__ = (UniqueConstraint("name"),)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # image | system | file
    driver: Mapped[str] = mapped_column(String(32), nullable=False, default="fs")
    transfer: Mapped[str] = mapped_column(String(32), nullable=False, default="ssh")
    total_mb: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    free_mb: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class ClusterDatastore(Base):
    """A datastore is available in a cluster."""

    __tablename__ = "cluster_datastores"
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True
    )
    datastore_id: Mapped[int] = mapped_column(
        ForeignKey("datastores.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ClusterVnet(Base):
    """A virtual network is available in a cluster."""

    __tablename__ = "cluster_vnets"
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True
    )
    vnet_id: Mapped[int] = mapped_column(
        ForeignKey("vnets.id", ondelete="CASCADE"), primary_key=True, index=True
    )
