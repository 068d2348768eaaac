"""Order leases: who may drive a PENDING order, and until when (orders_service.leases).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 17:52:12.296479
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_orders_status_lease", ["status", "lease_until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_status_lease")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("lease_id")
