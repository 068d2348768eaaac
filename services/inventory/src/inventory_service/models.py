"""Inventory's tables (Product, Reservation) and the request/response schemas of its API.

Stock lives in one integer column guarded twice: every change is a conditional UPDATE (see
stock.py) and the database itself refuses a negative value (CHECK constraint), so a bug that
slipped past the first guard still cannot oversell.
Request schemas forbid unknown fields and bound every length, number and list (bad input is a
422 with a clear message, never a 500 and never a giant allocation).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from relayshop_platform.jsontypes import JsonInt
from sqlalchemy import JSON, CheckConstraint, Column, DateTime
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

MAX_STOCK = 1_000_000
Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
OrderId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every datetime we store is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- tables -------------------------------------------------------------------------------------
class Product(SQLModel, table=True):
    __table_args__ = (CheckConstraint("stock >= 0", name="ck_product_stock_not_negative"),)

    sku: str = SQLField(primary_key=True, max_length=64)
    name: str = SQLField(max_length=200)
    price_cents: int
    stock: int


class ReservationStatus(StrEnum):
    HELD = "HELD"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"


class Reservation(SQLModel, table=True):
    # order_id is the primary key, so two concurrent reserves for one order cannot both insert:
    # the loser gets an IntegrityError and answers with the winner's reservation.
    order_id: str = SQLField(primary_key=True, max_length=64)
    status: ReservationStatus = SQLField(default=ReservationStatus.HELD, index=True)
    # [{"sku", "name", "quantity", "price_cents"}]: a snapshot, so a later price change does not
    # rewrite what this order reserved.
    items: list[dict[str, Any]] = SQLField(sa_column=Column(JSON, nullable=False))
    total_cents: int
    owner_sub: str = SQLField(max_length=255)
    expires_at: datetime = SQLField(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


# -- API schemas --------------------------------------------------------------------------------
class ProductOut(BaseModel):
    sku: str
    name: str
    price_cents: int
    stock: int


class StockUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stock: JsonInt = Field(ge=0, le=MAX_STOCK, description="The new absolute stock.")


class ReservationItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: JsonInt = Field(ge=1, le=1000)


class ReservationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: OrderId
    items: list[ReservationItemIn] = Field(min_length=1, max_length=100)

    @field_validator("items")
    @classmethod
    def _one_line_per_sku(cls, items: list[ReservationItemIn]) -> list[ReservationItemIn]:
        skus = [item.sku for item in items]
        if len(set(skus)) != len(skus):
            raise ValueError("each sku may appear only once; add the quantities together")
        return items


class ReservationItemOut(BaseModel):
    sku: str
    name: str
    quantity: int
    price_cents: int


class ReservationOut(BaseModel):
    order_id: str
    status: ReservationStatus
    items: list[ReservationItemOut]
    total_cents: int
    expires_at: datetime

    @classmethod
    def of(cls, reservation: Reservation) -> ReservationOut:
        return cls(
            order_id=reservation.order_id,
            status=reservation.status,
            items=[ReservationItemOut.model_validate(item) for item in reservation.items],
            total_cents=reservation.total_cents,
            expires_at=as_utc(reservation.expires_at),
        )
