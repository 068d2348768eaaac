"""The initial schema: the tables as the first release's create_all made them.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-28 17:49:30.582024
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
        "product",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.CheckConstraint("stock >= 0", name="ck_product_stock_not_negative"),
        sa.PrimaryKeyConstraint("sku"),
    )
    op.create_table(
        "reservation",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum("HELD", "COMMITTED", "RELEASED", name="reservationstatus"),
            nullable=False,
        ),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("total_cents", sa.Integer(), nullable=False),
        sa.Column("owner_sub", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id"),
    )
    with op.batch_alter_table("reservation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reservation_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reservation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reservation_status"))

    op.drop_table("reservation")
    op.drop_table("product")
    sa.Enum(name="reservationstatus").drop(op.get_bind(), checkfirst=True)  # PostgreSQL's enum type
