"""Tables of virtual networks: vnets, address ranges, leases, security groups."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from edgecloud.server.db.base import Base, Epoch, Json, Owned


class Vnet(Owned, Base):
    """A virtual network with its driver and bridge."""

    __tablename__ = "vnets"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)
    driver: Mapped[str] = mapped_column(String(16), nullable=False, default="bridge")
    bridge: Mapped[str] = mapped_column(String(15), nullable=False, default="")
    phydev: Mapped[str] = mapped_column(String(15), nullable=False, default="")
    vlan_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    security_groups: Mapped[list[int]] = mapped_column(Json, nullable=False, default=list)


class AddressRange(Base):
    """One address range (AR) of a vnet; `ar_id` counts from 0 within the vnet."""

    __tablename__ = "address_ranges"
    __table_args__ = (UniqueConstraint("vnet_id", "ar_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    vnet_id: Mapped[int] = mapped_column(
        ForeignKey("vnets.id", ondelete="CASCADE"), nullable=False, index=True
    )
    ar_id: Mapped[int] = mapped_column(Integer, nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    ip: Mapped[str | None] = mapped_column(String(15), nullable=True)
    mac: Mapped[str] = mapped_column(String(17), nullable=False)
    global_prefix: Mapped[str | None] = mapped_column(String(45), nullable=True)
    ula_prefix: Mapped[str | None] = mapped_column(String(45), nullable=True)
    ip6: Mapped[str | None] = mapped_column(String(45), nullable=True)
    prefix_length: Mapped[int | None] = mapped_column(Integer, nullable=True)
    template: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)


class Lease(Base):
    """An address taken from a range: used by a VM, or held so nobody gets it."""

    __tablename__ = "leases"
    __table_args__ = (UniqueConstraint("vnet_id", "ar_id", "idx"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    vnet_id: Mapped[int] = mapped_column(
        ForeignKey("vnets.id", ondelete="CASCADE"), nullable=False, index=True
    )
    ar_id: Mapped[int] = mapped_column(Integer, nullable=False)
    idx: Mapped[int] = mapped_column(Integer, nullable=False)
    mac: Mapped[str] = mapped_column(String(17), nullable=False)
    ip: Mapped[str | None] = mapped_column(String(15), nullable=True)
    ip6: Mapped[str | None] = mapped_column(String(45), nullable=True)
    ip6_global: Mapped[str | None] = mapped_column(String(45), nullable=True)
    ip6_ula: Mapped[str | None] = mapped_column(String(45), nullable=True)
    state: Mapped[str] = mapped_column(String(8), nullable=False)  # used | hold
    vm_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    owner_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    created_at: Mapped[int] = mapped_column(Epoch, nullable=False)


class SecurityGroup(Owned, Base):
    """Firewall rules applied to the NICs that name this group."""

    __tablename__ = "secgroups"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)
    rules: Mapped[list[dict[str, Any]]] = mapped_column(Json, nullable=False, default=list)
