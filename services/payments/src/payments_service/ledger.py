"""Every change of a payment: create once per order, then conditional status changes.

    (new) --approved--> CAPTURED --stock commit failed--> VOIDED
    (new) --declined--> DECLINED
                        CAPTURED --refund--> REFUNDED

A status change is one conditional UPDATE (``... WHERE id = :id AND status = 'CAPTURED'``): of
two concurrent requests (a refund and a void, two refunds) exactly one wins, and the money goes
back once. The processor is told after our row has changed; with a real processor, a crash
between the two is what an outbox table (or a reconciliation job) is for.
"""

from __future__ import annotations

from relayshop_platform.errors import Conflict
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .models import ChargeIn, Payment, PaymentStatus
from .provider import SimulatedProvider

CAPTURED, DECLINED, VOIDED, REFUNDED = (
    PaymentStatus.CAPTURED,
    PaymentStatus.DECLINED,
    PaymentStatus.VOIDED,
    PaymentStatus.REFUNDED,
)


async def by_order(session: AsyncSession, order_id: str) -> Payment | None:
    return (await session.exec(select(Payment).where(col(Payment.order_id) == order_id))).first()


async def charge_once(
    session: AsyncSession, provider: SimulatedProvider, body: ChargeIn, owner_sub: str
) -> tuple[Payment, bool]:
    """The payment of this order, charging the processor only if there is none yet.
    Returns (payment, created)."""
    existing = await by_order(session, body.order_id)
    if existing is not None:
        return existing, False
    # The order id is the processor's idempotency key: a concurrent duplicate that also gets
    # here receives the same charge back, never a second capture.
    result = await provider.charge(
        payment_method=body.payment_method,
        amount_cents=body.amount_cents,
        idempotency_key=body.order_id,
    )
    payment = Payment(
        order_id=body.order_id,
        owner_sub=owner_sub,
        status=CAPTURED if result.captured else DECLINED,
        amount_cents=body.amount_cents,
        payment_method=body.payment_method,
        provider_charge_id=result.id,
    )
    session.add(payment)
    try:
        await session.commit()
    except IntegrityError:
        # The unique order_id: a concurrent duplicate stored its payment first. Use that one.
        await session.rollback()
        winner = await by_order(session, body.order_id)
        if winner is None:
            raise
        return winner, False
    return payment, True


async def _move(session: AsyncSession, payment: Payment, to: PaymentStatus) -> bool:
    """CAPTURED -> ``to`` if nobody else moved it first; ``payment`` then shows its status."""
    result = await session.exec(
        update(Payment)
        .where(col(Payment.id) == payment.id, col(Payment.status) == CAPTURED)
        .values(status=to)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    moved = result.rowcount == 1
    if moved:
        payment.status = to  # what we just wrote: no SELECT to read it back
    else:
        await session.refresh(payment)  # someone else moved it first: see to what
    return moved


async def void(session: AsyncSession, provider: SimulatedProvider, payment: Payment) -> None:
    """Give the money of a capture back because its order cannot be fulfilled."""
    if await _move(session, payment, VOIDED):
        await provider.refund(payment.provider_charge_id)


async def refund(session: AsyncSession, provider: SimulatedProvider, payment: Payment) -> Payment:
    """CAPTURED -> REFUNDED; idempotent. A payment that took no money cannot be refunded."""
    if await _move(session, payment, REFUNDED):
        await provider.refund(payment.provider_charge_id)
    if payment.status != REFUNDED:
        raise Conflict(
            f"A {payment.status.value} payment cannot be refunded.",
            payment_id=payment.id,
            payment_status=payment.status.value,
        )
    return payment
