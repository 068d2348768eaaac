"""The orders table, the API's request/response schemas, and the neighbours' answers we read.

An order row is written PENDING before any remote call and always ends in a final state
(saga.py). Its items are one JSON column: read and written as a whole, never queried.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from relayshop_platform.jsontypes import JsonInt
from sqlalchemy import JSON, Column, DateTime, Index, String, UniqueConstraint
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel


class OrderStatus(StrEnum):
    PENDING = "PENDING"  # stored before any remote call; never an answer's final state
    CONFIRMED = "CONFIRMED"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        # The database, not a check-then-insert in Python, decides which of two concurrent
        # requests with the same Idempotency-Key creates the order. NULL keys never collide.
        UniqueConstraint("owner_sub", "idempotency_key", name="uq_orders_owner_idempotency_key"),
        Index("ix_orders_owner_created", "owner_sub", "created_at"),
        # The reconciler's question: which PENDING orders have a lease that ran out?
        Index("ix_orders_status_lease", "status", "lease_until"),
    )

    id: str = SQLField(default_factory=lambda: uuid.uuid4().hex, primary_key=True, max_length=32)
    # The token's opaque ``sub``: the only thing orders knows about its customer.
    owner_sub: str = SQLField(max_length=255)
    status: OrderStatus = SQLField(
        default=OrderStatus.PENDING, sa_column=Column(String(16), nullable=False)
    )
    # [{"sku", "quantity"}] as asked; price_cents and name are added from inventory's answer.
    items: list[dict[str, Any]] = SQLField(sa_column=Column(JSON, nullable=False))
    payment_method: str = SQLField(max_length=64)
    total_cents: int | None = None
    payment_id: str | None = SQLField(default=None, max_length=64)
    idempotency_key: str | None = SQLField(default=None, max_length=255)
    # SHA-256 of the canonical request body: the same key with another body is refused.
    request_hash: str | None = SQLField(default=None, max_length=64)
    # The answer the saga gave (HTTP status and problem detail), so a replay gives the same one.
    outcome_status: int | None = None
    outcome_detail: str | None = SQLField(default=None, max_length=500)
    created_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    # Who may drive this PENDING order, and until when (leases.py): the request that placed it,
    # or later the reconciler. Only the holder of lease_id may write the final state.
    lease_id: str | None = SQLField(default=None, max_length=32)
    lease_until: datetime | None = SQLField(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


# ---- the public API ---------------------------------------------------------------------------
# Strict numbers and strings: "5" or true is not a quantity (pydantic's lax mode would quietly
# turn true into 1); 5.0 is, being the JSON number 5 (JsonInt).


class OrderItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Annotated[
        str, Field(strict=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    ]
    quantity: JsonInt = Field(ge=1, le=1000)


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=100)]
    # A payment method token such as pm_card_visa. The pattern refuses a raw card number before
    # it could be stored or logged (PCI DSS: orders never holds one).
    payment_method: Annotated[
        str, Field(strict=True, min_length=4, max_length=64, pattern=r"^pm_[A-Za-z0-9_]+$")
    ]

    @field_validator("items")
    @classmethod
    def _one_line_per_sku(cls, items: list[OrderItemIn]) -> list[OrderItemIn]:
        # Refused rather than merged: merging could silently exceed the per-line limit, and one
        # line per sku keeps the order, the reservation and the request hash unambiguous.
        skus = [item.sku for item in items]
        duplicates = sorted({sku for sku in skus if skus.count(sku) > 1})
        if duplicates:
            raise ValueError(f"each sku may appear only once (repeated: {', '.join(duplicates)})")
        return items

    def fingerprint(self) -> str:
        """SHA-256 of the canonical body: key order, whitespace and item order do not matter."""
        canonical = {
            "items": sorted((item.model_dump() for item in self.items), key=lambda i: i["sku"]),
            "payment_method": self.payment_method,
        }
        data = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(data.encode()).hexdigest()


class OrderItemOut(BaseModel):
    sku: str
    quantity: int
    price_cents: int | None = None  # unknown until inventory priced the order
    name: str | None = None


class OrderOut(BaseModel):
    id: str
    status: OrderStatus
    items: list[OrderItemOut]
    total_cents: int | None
    payment_id: str | None
    payment_method: str
    created_at: datetime
    owner: str  # the owner's opaque sub, no personal data

    @classmethod
    def from_row(cls, order: Order) -> OrderOut:
        created = order.created_at
        if created.tzinfo is None:  # SQLite hands back naive datetimes; we only ever store UTC
            created = created.replace(tzinfo=UTC)
        return cls(
            id=order.id,
            status=order.status,
            items=[OrderItemOut.model_validate(item) for item in order.items],
            total_cents=order.total_cents,
            payment_id=order.payment_id,
            payment_method=order.payment_method,
            created_at=created,
            owner=order.owner_sub,
        )


# ---- what the neighbours answer (only the fields orders reads; the rest is ignored) ------------


class ReservedItem(BaseModel):
    sku: str
    name: str
    quantity: int
    price_cents: int = Field(ge=0)


class Reservation(BaseModel):
    items: list[ReservedItem]
    total_cents: int = Field(ge=0)
    status: str = "HELD"  # HELD, COMMITTED or RELEASED


class Payment(BaseModel):
    id: str
    status: str  # CAPTURED, DECLINED, VOIDED or REFUNDED
