"""Leases: at most one party drives a PENDING order at a time, and only that one finishes it.

    the request placing the order   holds a lease from the insert, for saga_timeout_seconds
    the reconciler (any replica)    takes over an order whose lease ran out, atomically:
        UPDATE orders SET lease_id = :new, lease_until = :now + :timeout
         WHERE id = :id AND status = 'PENDING' AND (lease_until IS NULL OR lease_until < :now)
    the lease holder                writes the outcome, again atomically:
        UPDATE orders SET status = :final, ...
         WHERE id = :id AND status = 'PENDING' AND lease_id = :mine

The rowcount says who won, on SQLite and PostgreSQL alike, so two replicas never both work on one
order and a late writer never overwrites a final state. A holder stops calling neighbours when
its lease ends (calls.py cuts every timeout to it), so nobody of ours is still acting on an order
that was taken over. Leases compare wall-clock times written by different replicas: keep their
clocks in sync (NTP); a skew of a second matters little against a lease of tens of seconds.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from sqlalchemy import ColumnElement, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .models import Order, OrderStatus, utcnow

PENDING = OrderStatus.PENDING


def grant(order: Order, seconds: float) -> float:
    """Give a new order to the request placing it; returns that request's deadline (monotonic)."""
    order.lease_id = uuid.uuid4().hex
    order.lease_until = utcnow() + timedelta(seconds=seconds)
    return time.monotonic() + seconds


async def expired(session: AsyncSession, limit: int) -> list[str]:
    """Ids of PENDING orders nobody drives any more, oldest first."""
    query = (
        select(Order.id)
        .where(col(Order.status) == PENDING, _lease_over())
        .order_by(col(Order.created_at))
        .limit(limit)
    )
    return list((await session.exec(query)).all())


async def take(session: AsyncSession, order_id: str, seconds: float) -> tuple[str, float] | None:
    """Take over an order whose lease ran out: (lease id, deadline), or None if someone else
    did first or the order is final already."""
    lease_id = uuid.uuid4().hex
    result = await session.exec(
        update(Order)
        .where(col(Order.id) == order_id, col(Order.status) == PENDING, _lease_over())
        .values(lease_id=lease_id, lease_until=utcnow() + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    if result.rowcount != 1:
        return None
    return lease_id, time.monotonic() + seconds


async def save(session: AsyncSession, order: Order, lease_id: str) -> bool:
    """Write the saga's outcome if ``lease_id`` still holds the order; True if it did.

    A final status ends the lease. An order still PENDING (an outcome we could not settle) is
    handed to the reconciler at once: its lease ends now instead of at its deadline.
    """
    now = utcnow()
    result = await session.exec(
        update(Order)
        .where(
            col(Order.id) == order.id,
            col(Order.status) == PENDING,
            col(Order.lease_id) == lease_id,
        )
        .values(
            status=order.status,
            items=order.items,
            total_cents=order.total_cents,
            payment_id=order.payment_id,
            outcome_status=order.outcome_status,
            outcome_detail=order.outcome_detail,
            updated_at=now,
            lease_until=None if order.status != PENDING else now,
        )
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return result.rowcount == 1


def _lease_over() -> ColumnElement[bool]:
    return or_(col(Order.lease_until).is_(None), col(Order.lease_until) < utcnow())
