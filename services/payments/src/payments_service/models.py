"""The Payment table and the request/response schemas of the payments API.

A payment stores the payment method's token (``pm_card_visa``), the processor's charge id and
the owner's ``sub``: never a card number. ``order_id`` is unique, so one order can be charged at
most once however often, or however concurrently, the charge is retried.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from relayshop_platform.jsontypes import JsonInt
from sqlalchemy import Column, DateTime
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

MAX_AMOUNT_CENTS = 100_000_000  # one million in the currency: far above any honest demo order
OrderId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_payment_id() -> str:
    return "pay_" + uuid.uuid4().hex


class PaymentStatus(StrEnum):
    CAPTURED = "CAPTURED"  # the money is taken and the stock committed (or being committed)
    DECLINED = "DECLINED"  # the processor said no; nothing was taken
    VOIDED = "VOIDED"  # captured, then given back because the stock could not be committed
    REFUNDED = "REFUNDED"  # captured, then given back on request (a cancelled order, an admin)


class Payment(SQLModel, table=True):
    id: str = SQLField(default_factory=new_payment_id, primary_key=True, max_length=64)
    order_id: str = SQLField(unique=True, max_length=64)
    owner_sub: str = SQLField(max_length=255, index=True)
    status: PaymentStatus
    amount_cents: int
    payment_method: str = SQLField(max_length=64)
    provider_charge_id: str = SQLField(max_length=64)
    created_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class ChargeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: OrderId
    amount_cents: JsonInt = Field(gt=0, le=MAX_AMOUNT_CENTS)
    payment_method: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_]+$",
        description="A payment method token such as pm_card_visa; never a card number.",
    )


class PaymentOut(BaseModel):
    id: str
    order_id: str
    status: PaymentStatus
    amount_cents: int
    payment_method: str
    created_at: datetime

    @classmethod
    def of(cls, payment: Payment) -> PaymentOut:
        created = payment.created_at
        return cls(
            id=payment.id,
            order_id=payment.order_id,
            status=payment.status,
            amount_cents=payment.amount_cents,
            payment_method=payment.payment_method,
            # SQLite hands back naive datetimes; every datetime we store is UTC.
            created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
        )
