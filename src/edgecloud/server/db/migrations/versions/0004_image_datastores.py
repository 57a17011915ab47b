"""image datastores: checksums, where an image came from, why it failed

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("checksum", sa.String(length=80), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("origin", sa.String(length=2048), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("bytes", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("bytes")
        batch_op.drop_column("last_error")
        batch_op.drop_column("origin")
        batch_op.drop_column("checksum")
