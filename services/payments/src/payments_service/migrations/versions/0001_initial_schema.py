"""The initial schema: the tables as the first release's create_all made them.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-28 17:49:29.061456
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "payment",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("owner_sub", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            sa.Enum("CAPTURED", "DECLINED", "VOIDED", "REFUNDED", name="paymentstatus"),
            nullable=False,
        ),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("payment_method", sa.String(length=64), nullable=False),
        sa.Column("provider_charge_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id"),
    )
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_owner_sub"), ["owner_sub"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_owner_sub"))

    op.drop_table("payment")
    sa.Enum(name="paymentstatus").drop(op.get_bind(), checkfirst=True)  # PostgreSQL's enum type
