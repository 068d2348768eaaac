"""System routes: orders' reconciler, acting for no user, settles an interrupted order.

    GET  /api/payments/system/by-order/{order_id}          the payment of an order, or 404
    POST /api/payments/system/by-order/{order_id}/refund   CAPTURED -> REFUNDED (idempotent)

When orders crashed (or lost its answer) mid-saga, the customer's token is long gone, yet the
order must still be finished or compensated. These two routes take orders' own service token as
the bearer and nothing else (security.require_service): no user, so no ownership check; in
exchange they can only read a payment and give money back, never take any. The gateway keeps
every /api/payments/system path internal.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from relayshop_platform.db import DbSession
from relayshop_platform.errors import NotFound
from relayshop_platform.security import require_service

from .. import ledger
from ..models import Payment, PaymentOut
from ..provider import Provider

router = APIRouter(prefix="/api/payments/system", tags=["internal"])
OrderIdPath = Annotated[str, Path(min_length=1, max_length=64)]


def _found(payment: Payment | None, order_id: str) -> Payment:
    if payment is None:
        raise NotFound(f"No payment for order '{order_id}'.")
    return payment


@router.get(
    "/by-order/{order_id}",
    response_model=PaymentOut,
    dependencies=[Depends(require_service(services={"orders"}))],
)
async def get_by_order(order_id: OrderIdPath, session: DbSession) -> PaymentOut:
    """The payment of an order, whoever owns it: for orders' reconciler only."""
    return PaymentOut.of(_found(await ledger.by_order(session, order_id), order_id))


@router.post(
    "/by-order/{order_id}/refund",
    response_model=PaymentOut,
    dependencies=[Depends(require_service(services={"orders"}))],
    responses={409: {"description": "The payment took no money (DECLINED or VOIDED)."}},
)
async def refund_by_order(
    order_id: OrderIdPath, session: DbSession, provider: Provider
) -> PaymentOut:
    """CAPTURED -> REFUNDED (idempotent): the money of an order that could not be completed."""
    payment = _found(await ledger.by_order(session, order_id), order_id)
    return PaymentOut.of(await ledger.refund(session, provider, payment))
