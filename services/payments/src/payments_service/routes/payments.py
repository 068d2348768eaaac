"""Reading and refunding payments: the owner, support and admins read; only admins refund.

The by-order routes are internal (orders looks up and refunds the payment of an order it
cancels); the others are public, through the gateway. A customer asking for someone else's
payment gets 404, exactly like an unknown id, so ids cannot be probed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from relayshop_platform.db import DbSession
from relayshop_platform.errors import NotFound
from relayshop_platform.roles import STAFF_READERS, Role
from relayshop_platform.security import (
    CurrentUser,
    owned_or_staff,
    require_caller,
    require_roles,
    require_scope,
)
from relayshop_platform.tokens import Principal
from sqlmodel import col, select

from .. import ledger
from ..models import Payment, PaymentOut
from ..provider import Provider

router = APIRouter(prefix="/api/payments")
IdPath = Annotated[str, Path(min_length=1, max_length=64)]


def _visible(payment: Payment | None, user: Principal, what: str) -> Payment:
    if payment is None or not owned_or_staff(payment.owner_sub, user, staff=STAFF_READERS):
        raise NotFound(f"No payment {what}.")
    return payment


@router.get(
    "/by-order/{order_id}",
    response_model=PaymentOut,
    tags=["internal"],
    dependencies=[
        Depends(
            require_caller(
                services={"orders"}, roles={Role.CUSTOMER, Role.ADMIN}, scope="orders:write"
            )
        )
    ],
)
async def get_by_order(order_id: IdPath, user: CurrentUser, session: DbSession) -> PaymentOut:
    """The payment of an order: its owner, support or admin, via orders."""
    payment = await ledger.by_order(session, order_id)
    return PaymentOut.of(_visible(payment, user, f"for order '{order_id}'"))


@router.post(
    "/by-order/{order_id}/refund",
    response_model=PaymentOut,
    tags=["internal"],
    dependencies=[
        Depends(
            require_caller(
                services={"orders"}, roles={Role.CUSTOMER, Role.ADMIN}, scope="orders:write"
            )
        )
    ],
)
async def refund_by_order(
    order_id: IdPath, user: CurrentUser, session: DbSession, provider: Provider
) -> PaymentOut:
    """CAPTURED -> REFUNDED (idempotent) for a cancelled order; 409 if it took no money."""
    payment = _visible(await ledger.by_order(session, order_id), user, f"for order '{order_id}'")
    return PaymentOut.of(await ledger.refund(session, provider, payment))


@router.get(
    "",
    response_model=list[PaymentOut],
    tags=["payments"],
    dependencies=[Depends(require_roles(*STAFF_READERS, scope="payments:read"))],
)
async def list_payments(
    session: DbSession,
    order_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[PaymentOut]:
    """Support and admin, read only: every payment, newest first, or the one of ``order_id``
    (an audit: one payment per order, and what became of it)."""
    query = select(Payment).order_by(col(Payment.created_at).desc(), col(Payment.id))
    if order_id is not None:
        query = query.where(col(Payment.order_id) == order_id)
    payments = await session.exec(query.limit(limit).offset(offset))
    return [PaymentOut.of(payment) for payment in payments]


@router.get(
    "/{payment_id}",
    response_model=PaymentOut,
    tags=["payments"],
    dependencies=[Depends(require_scope("payments:read"))],
)
async def get_payment(payment_id: IdPath, user: CurrentUser, session: DbSession) -> PaymentOut:
    """One payment: its owner (the user who was charged), support or admin; 404 otherwise."""
    payment = await session.get(Payment, payment_id)
    return PaymentOut.of(_visible(payment, user, f"'{payment_id}'"))


@router.post(
    "/{payment_id}/refund",
    response_model=PaymentOut,
    tags=["payments"],
    dependencies=[Depends(require_roles(Role.ADMIN, scope="payments:write"))],
)
async def refund_payment(payment_id: IdPath, session: DbSession, provider: Provider) -> PaymentOut:
    """Admin only: CAPTURED -> REFUNDED (idempotent); 409 if DECLINED or VOIDED."""
    payment = await session.get(Payment, payment_id)
    if payment is None:
        raise NotFound(f"No payment '{payment_id}'.")
    return PaymentOut.of(await ledger.refund(session, provider, payment))
