"""POST /api/payments/charges: the payments step of the order saga (internal: orders only).

    1. find or create the payment of this order (unique order_id: one charge per order, ever)
    2. DECLINED -> 402; VOIDED -> 409; REFUNDED -> the payment as it is
    3. CAPTURED -> commit the stock reservation at inventory, relaying the user's token plus our
       own service token (inventory checks "a customer, via payments" itself)
    4. the commit refused (404/409) -> VOID the payment, 409: we must not keep money for goods
       we cannot deliver. Inventory unreachable or too slow -> VOID too, 503/504.

Why void when inventory is merely unreachable (the commit may even have happened)? The caller,
orders, runs the saga: on any failure of this step it compensates by releasing the reservation
(which works for HELD and COMMITTED alike) and marks the order FAILED. Voiding here keeps the two
sides consistent (no money kept, no stock kept) without a second round of guessing. A repeated
charge of a CAPTURED payment commits again (idempotent at inventory), so a retry after a crash
between capture and commit finishes the job.
"""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter, Depends, Response, status
from relayshop_platform.db import DbSession
from relayshop_platform.errors import Conflict, PaymentRequired, UpstreamUnavailable
from relayshop_platform.relay import BearerRelay, HttpClient, NextHops, upstream_error
from relayshop_platform.roles import Role
from relayshop_platform.security import CurrentUser, owned_or_staff, require_caller
from sqlmodel.ext.asyncio.session import AsyncSession

from .. import ledger
from ..config import PaymentsSettings, Settings
from ..models import ChargeIn, Payment, PaymentOut, PaymentStatus
from ..provider import Provider, SimulatedProvider

router = APIRouter(prefix="/api/payments", tags=["internal"])


@router.post(
    "/charges",
    status_code=status.HTTP_201_CREATED,
    response_model=PaymentOut,
    dependencies=[
        Depends(
            require_caller(
                services={"orders"}, roles={Role.CUSTOMER, Role.ADMIN}, scope="orders:write"
            )
        )
    ],
    responses={
        200: {"description": "This order was already charged: the same payment."},
        402: {"description": "Declined (the payment is stored as DECLINED)."},
        409: {"description": "The stock could not be committed: the payment is VOIDED."},
        422: {"description": "Bad body, or an unknown payment method."},
    },
)
async def charge(
    body: ChargeIn,
    user: CurrentUser,
    hops: NextHops,
    session: DbSession,
    settings: Settings,
    http: HttpClient,
    provider: Provider,
    response: Response,
) -> PaymentOut:
    """Charge an order once, then commit its stock at inventory. Keyed by order_id: a repeat
    answers as the first call did, and never charges twice."""
    # The tokens for inventory first (the user's exchanged for it, and ours): if auth is down,
    # nothing is charged.
    relay = await hops.to("inventory")
    payment, created = await ledger.charge_once(session, provider, body, user.sub)
    if not created:
        if not owned_or_staff(payment.owner_sub, user, staff={Role.ADMIN}):
            # Someone else's order id: say only that it is taken, nothing about the payment.
            raise Conflict(f"The order id '{body.order_id}' is already in use.")
        if payment.amount_cents != body.amount_cents:
            raise Conflict("This order was already charged with a different amount.")
        response.status_code = status.HTTP_200_OK

    if payment.status == PaymentStatus.CAPTURED:
        await _commit_stock(settings, http, session, provider, payment, relay)
    if settings.fault_answer_delay_seconds:  # fault injection (tests only): a slow answer
        await asyncio.sleep(settings.fault_answer_delay_seconds)
    if payment.status == PaymentStatus.DECLINED:
        raise PaymentRequired(
            "The card was declined.", payment_id=payment.id, payment_status="DECLINED"
        )
    if payment.status == PaymentStatus.VOIDED:
        raise Conflict(
            "The stock reservation could not be committed; the payment was voided.",
            payment_id=payment.id,
            payment_status="VOIDED",
        )
    return PaymentOut.of(payment)


async def _commit_stock(
    settings: PaymentsSettings,
    http: httpx.AsyncClient,
    session: AsyncSession,
    provider: SimulatedProvider,
    payment: Payment,
    relay: BearerRelay,
) -> None:
    """Commit the order's reservation; void the payment if that fails (see the module doc)."""
    url = f"{settings.url('inventory')}/api/inventory/reservations/{payment.order_id}/commit"
    # Sent once, not retried: commit is idempotent at inventory, but the caller (orders) is
    # waiting, and voiding lets orders compensate cleanly; its reconciler covers the rest.
    try:
        answer = await http.post(url, auth=relay)  # the client's connect and read timeouts
    except httpx.HTTPError as exc:
        await ledger.void(session, provider, payment)
        error = upstream_error(exc, "inventory")  # 503 down, 504 too slow
        raise type(error)(f"{error.detail} The payment was voided.", payment_id=payment.id) from exc
    if answer.status_code in (404, 409):
        await ledger.void(session, provider, payment)  # the caller answers 409 from the status
    elif answer.status_code != 200:
        # 401/403 (a misconfigured relay) or 5xx: not the customer's fault, but not a sale.
        await ledger.void(session, provider, payment)
        raise UpstreamUnavailable(
            f"Inventory refused the commit ({answer.status_code}); the payment was voided.",
            payment_id=payment.id,
        )
    else:
        # Committed. Re-read: a concurrent duplicate may have voided meanwhile (its own commit
        # timed out), and then that is the truth to answer with.
        await session.refresh(payment)
