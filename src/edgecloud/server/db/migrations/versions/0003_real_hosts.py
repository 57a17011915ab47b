"""real hosts: transport, pinned host key, node version, guest runtime

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("transport", sa.String(length=8), nullable=False, server_default="ssh")
        )
        batch_op.add_column(
            sa.Column("address", sa.String(length=255), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("port", sa.Integer(), nullable=False, server_default="22"))
        batch_op.add_column(sa.Column("host_key", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "root",
                sa.String(length=1024),
                nullable=False,
                server_default="/var/lib/edgecloud",
            )
        )
        batch_op.add_column(
            sa.Column("node_version", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("hypervisors", _JSON, nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("vms", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runtime", _JSON, nullable=False, server_default="{}"))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("vms", schema=None) as batch_op:
        batch_op.drop_column("runtime")
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        for column in (
            "last_error",
            "hypervisors",
            "node_version",
            "root",
            "host_key",
            "port",
            "address",
            "transport",
        ):
            batch_op.drop_column(column)
