"""The orders API: place (the saga, made idempotent), list, read and cancel orders.

Who may do what (each rule is declared on its route; ownership is checked in the handler):
    POST /api/orders                customer
    GET  /api/orders                customer (own orders), support and admin (every order)
    GET  /api/orders/{id}           owner, support, admin; 404 for anyone else
    POST /api/orders/{id}/cancel    owner, admin; 404 for another customer, 403 for other roles
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Header, Path, Query
from relayshop_platform.db import DbSession
from relayshop_platform.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PaymentRequired,
    RelayshopError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from relayshop_platform.relay import Hops, HttpClient, NextHops
from relayshop_platform.roles import STAFF_READERS, Role
from relayshop_platform.security import CurrentUser, owned_or_staff, require_roles, require_scope
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from .. import leases
from ..calls import Calls
from ..config import OrdersSettings, Settings
from ..models import Order, OrderCreate, OrderOut, OrderStatus
from ..saga import CALLEES, OrderSaga, Routes

router = APIRouter(prefix="/api/orders", tags=["orders"])

# How a failed saga answered, by HTTP status, so that a replay answers exactly the same.
FAILURE_ERRORS: dict[int, type[RelayshopError]] = {
    402: PaymentRequired,
    409: Conflict,
    422: InvalidInput,
    503: UpstreamUnavailable,
    504: UpstreamTimeout,
}
# The draft standard (draft-ietf-httpapi-idempotency-key-header) makes the key a string; we take
# visible ASCII only, so it is safe to store and to log.
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[!-~]+$")
]
OrderId = Annotated[str, Path(min_length=1, max_length=64)]


@router.post(
    "",
    status_code=201,
    dependencies=[Depends(require_roles(Role.CUSTOMER, scope="orders:write"))],
    responses={
        402: {"description": "Payment declined: order PAYMENT_FAILED, stock restored"},
        409: {"description": "Out of stock (nothing charged), or the same key still in progress"},
        422: {"description": "Bad body, unknown sku or payment method, or a reused key"},
        503: {"description": "A neighbour is down: order FAILED, or PENDING until reconciled"},
        504: {"description": "A neighbour is too slow: order FAILED, or PENDING until reconciled"},
    },
)
async def place_order(
    body: OrderCreate,
    user: CurrentUser,
    session: DbSession,
    settings: Settings,
    http: HttpClient,
    hops: NextHops,
    idempotency_key: IdempotencyKey = None,
) -> OrderOut:
    request_hash = body.fingerprint()
    if idempotency_key is not None:
        earlier = await _find_by_key(session, user.sub, idempotency_key)
        if earlier is not None:
            return await _replay(session, earlier, request_hash, settings)
    # The tokens for both callees (our own, and the user's exchanged for each) are fetched
    # before the order exists, so a down auth server leaves nothing behind.
    auth = await _hop_auth(hops)
    order = Order(
        owner_sub=user.sub,
        items=[item.model_dump() for item in body.items],
        payment_method=body.payment_method,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    # This request drives the order until its lease ends; after that only the reconciler may.
    deadline = leases.grant(order, settings.saga_timeout_seconds)
    lease_id = order.lease_id or ""
    session.add(order)
    try:
        await session.commit()  # committed before any remote call: an order is never lost
    except IntegrityError:
        await session.rollback()
        if idempotency_key is None:
            raise
        # A concurrent request with the same key won the unique constraint: answer like it.
        winner = await _find_by_key(session, user.sub, idempotency_key)
        if winner is None:
            raise
        return await _replay(session, winner, request_hash, settings)

    # The saga changes a detached copy; only leases.save writes it, and only while we hold the
    # lease (a plain flush of the ORM object could overwrite the reconciler's final state).
    session.expunge(order)
    await _saga(settings, http, auth, deadline).place(order)
    if not await leases.save(session, order, lease_id):
        # Our lease ran out and the reconciler took over: answer with what it decided.
        stored = await session.get(Order, order.id, populate_existing=True)
        order = stored or order
    return _answer(order)


@router.get(
    "", dependencies=[Depends(require_roles(Role.CUSTOMER, *STAFF_READERS, scope="orders:read"))]
)
async def list_orders(
    user: CurrentUser,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[OrderOut]:
    """Newest first. A customer sees their own orders; support and admin see every order."""
    query = select(Order).order_by(col(Order.created_at).desc(), col(Order.id)).limit(limit)
    if not user.has_any_role(STAFF_READERS):
        query = query.where(Order.owner_sub == user.sub)
    orders = await session.exec(query.offset(offset))
    return [OrderOut.from_row(order) for order in orders]


@router.get(
    "/{order_id}",
    responses={404: {"description": "Unknown, or not yours to see"}},
    dependencies=[Depends(require_scope("orders:read"))],
)
async def get_order(order_id: OrderId, user: CurrentUser, session: DbSession) -> OrderOut:
    order = await session.get(Order, order_id)
    if order is None or not owned_or_staff(order.owner_sub, user, staff=STAFF_READERS):
        raise _not_found()  # a stranger learns nothing, not even that the id exists
    return OrderOut.from_row(order)


@router.post(
    "/{order_id}/cancel",
    dependencies=[Depends(require_roles(Role.CUSTOMER, Role.ADMIN, scope="orders:write"))],
    responses={
        404: {"description": "Unknown, or another customer's order"},
        409: {"description": "The order is not CONFIRMED (failed, or still being placed)"},
        503: {"description": "Payments or inventory is down: the order stays CONFIRMED"},
    },
)
async def cancel_order(
    order_id: OrderId,
    user: CurrentUser,
    session: DbSession,
    settings: Settings,
    http: HttpClient,
    hops: NextHops,
) -> OrderOut:
    """Refund the payment, give the stock back, then mark the order CANCELLED (idempotent)."""
    order = await session.get(Order, order_id)
    if order is None or not owned_or_staff(order.owner_sub, user, staff={Role.ADMIN}):
        raise _not_found()
    if order.status == OrderStatus.CANCELLED:
        return OrderOut.from_row(order)
    if order.status != OrderStatus.CONFIRMED:
        raise Conflict(f"An order in status {order.status} cannot be cancelled.")
    deadline = time.monotonic() + settings.saga_timeout_seconds
    await _saga(settings, http, await _hop_auth(hops), deadline).cancel(order)
    session.add(order)
    await session.commit()
    return OrderOut.from_row(order)


# ---- helpers --------------------------------------------------------------------------------


async def _hop_auth(hops: Hops) -> dict[str, httpx.Auth]:
    """Per callee, the customer's token for it (exchanged, or relayed) and our own beside it."""
    return {callee: await hops.to(callee) for callee in CALLEES}


def _saga(
    settings: OrdersSettings,
    http: httpx.AsyncClient,
    auth: dict[str, httpx.Auth],
    deadline: float,
) -> OrderSaga:
    """The saga of this request: the customer's tokens, under this request's deadline."""
    return OrderSaga(
        Calls(http, auth, deadline=deadline),
        Routes(settings.url("inventory"), settings.url("payments")),
        delay_before_charge=settings.fault_delay_before_charge_seconds,
    )


def _not_found() -> NotFound:
    return NotFound("No order with this id.")


def _answer(order: Order) -> OrderOut:
    """The saga's answer: the order itself when it went through, else its problem (RFC 9457)."""
    if order.status in (OrderStatus.CONFIRMED, OrderStatus.CANCELLED):
        return OrderOut.from_row(order)
    error = FAILURE_ERRORS.get(order.outcome_status or 503, UpstreamUnavailable)
    raise error(
        order.outcome_detail or "The order could not be placed.",
        order_id=order.id,
        order_status=order.status,
    )


async def _find_by_key(session: DbSession, owner_sub: str, key: str) -> Order | None:
    query = select(Order).where(Order.owner_sub == owner_sub, Order.idempotency_key == key)
    return (await session.exec(query)).first()


async def _replay(
    session: DbSession, order: Order, request_hash: str, settings: OrdersSettings
) -> OrderOut:
    """Answer a repeated Idempotency-Key with the first request's answer, never a second charge."""
    if order.request_hash != request_hash:
        raise InvalidInput("This Idempotency-Key was already used with a different request body.")
    deadline = time.monotonic() + settings.idempotent_replay_wait_seconds
    while order.status == OrderStatus.PENDING:  # the first request is still running its saga
        if time.monotonic() >= deadline:
            raise Conflict(
                "An order with this Idempotency-Key is still being placed; retry shortly.",
                order_id=order.id,
            )
        # End our read transaction first (nothing to write; commit keeps the loaded objects
        # usable): the next read then sees the other request's commit, and we hold no pooled
        # connection while we wait, so the request we wait for can always get one to finish.
        await session.commit()
        await asyncio.sleep(0.05)
        reloaded = await session.get(Order, order.id, populate_existing=True)
        if reloaded is None:
            raise _not_found()
        order = reloaded
    return _answer(order)
