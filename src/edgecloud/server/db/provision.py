"""Provisions: whole edge clusters made from a template on a provider, and their step logs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from edgecloud.server.db.base import Base, Epoch, Json, Owned


class Provision(Owned, Base):
    """A provision: its template, where it stands, what it made in the provider and here.

    `tag` names it at the provider (namespaces, AWS tags); `hosts` holds what the provider
    returned for each host; `made` the ids of what was registered in the front-end, by
    kind and name, so a retried step skips what exists and `delete` finds what to remove.
    """

    __tablename__ = "provisions"
    __table_args__ = (UniqueConstraint("tag"),)
    tag: Mapped[str] = mapped_column(String(16), nullable=False)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    state: Mapped[int] = mapped_column(Integer, nullable=False, default=0, index=True)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    inputs: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    secrets: Mapped[str] = mapped_column(Text, nullable=False, default="")  # encrypted inputs
    host_count: Mapped[int | None] = mapped_column(Integer, nullable=True)  # after a scale
    hosts: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    made: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    cluster_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    operation: Mapped[str] = mapped_column(String(16), nullable=False, default="create")
    params: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    step: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    last_error: Mapped[str] = mapped_column(Text, nullable=False, default="")
    updated_at: Mapped[int] = mapped_column(Epoch, nullable=False, default=0)


class ProvisionStep(Base):
    """One run of one step of a provision's operation, with its log."""

    __tablename__ = "provision_steps"
    __table_args__ = (Index("ix_provision_steps_provision_id_id", "provision_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provision_id: Mapped[int] = mapped_column(
        ForeignKey("provisions.id", ondelete="CASCADE"), nullable=False
    )
    operation: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(String(32), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    log: Mapped[str] = mapped_column(Text, nullable=False, default="")
    started_at: Mapped[int] = mapped_column(Epoch, nullable=False, default=0)
    ended_at: Mapped[int | None] = mapped_column(Epoch, nullable=True)
