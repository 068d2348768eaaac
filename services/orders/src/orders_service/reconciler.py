"""The reconciler: finishes every order a crash, a kill or a down neighbour left PENDING.

A PeriodicTask (relayshop_platform.tasks: started when the service is ready, cancelled at
shutdown) that runs once at start and then every ``reconcile_interval_seconds``. Each round takes
over the PENDING orders whose lease ran out (leases.py: the request that placed them stopped
acting ``saga_timeout_seconds`` after the insert, or died) and asks inventory and payments what
really happened (OrderSaga.recover):

    payment CAPTURED and reservation COMMITTED   -> CONFIRMED (the sale happened)
    anything else                                -> release the stock, refund a capture,
                                                    -> PAYMENT_FAILED if declined, else FAILED
    a neighbour still down                       -> stays PENDING, tried again next round

No customer is present, so there is no user token to relay: orders calls the system routes of
inventory and payments with its own client_credentials token (security.require_service), which
let it look up, release and refund by order id, and nothing else. Several replicas may run this
at once: taking an order over is a conditional UPDATE, so each order has one driver at a time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from fastapi import FastAPI
from relayshop_platform.relay import ServiceAuth
from relayshop_platform.tasks import PeriodicTask

from . import leases
from .calls import Calls
from .config import OrdersSettings
from .models import Order, OrderStatus
from .saga import CALLEES, OrderSaga, Routes

log = logging.getLogger(__name__)
CONCURRENCY = 8  # orders recovered at once: a slow neighbour must not stall the whole round


async def reconcile_once(app: FastAPI) -> int:
    """One round; returns how many orders it brought to a final state."""
    settings: OrdersSettings = app.state.settings
    async with app.state.sessionmaker() as session:
        order_ids = await leases.expired(session, settings.reconcile_batch_size)
    if not order_ids:
        return 0
    # Our own token for each callee (no user is present): each is accepted by its callee only.
    tokens = app.state.service_tokens
    auth = {callee: ServiceAuth(await tokens.token(callee)) for callee in CALLEES}
    routes = Routes(settings.url("inventory"), settings.url("payments"), system=True)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(order_id: str) -> bool:
        async with limit:
            return await _recover(app, order_id, auth, routes, settings.saga_timeout_seconds)

    finished = await asyncio.gather(*(one(order_id) for order_id in order_ids))
    return sum(finished)


async def _recover(
    app: FastAPI,
    order_id: str,
    auth: dict[str, ServiceAuth],
    routes: Routes,
    lease_seconds: float,
) -> bool:
    async with app.state.sessionmaker() as session:
        taken = await leases.take(session, order_id, lease_seconds)
        if taken is None:
            return False  # another replica took it, or it became final meanwhile
        lease_id, deadline = taken
        order = await session.get(Order, order_id, populate_existing=True)
        if order is None:
            return False
        session.expunge(order)  # worked on detached; written only by leases.save
    await OrderSaga(Calls(app.state.http, auth, deadline=deadline), routes).recover(order)
    async with app.state.sessionmaker() as session:
        saved = await leases.save(session, order, lease_id)
    if saved and order.status != OrderStatus.PENDING:
        log.info("reconciled order %s: %s", order.id, order.status)
        return True
    return False


async def reconcile(app: FastAPI) -> None:
    await reconcile_once(app)


reconciler = PeriodicTask(
    "orders-reconciler",
    reconcile,
    every=lambda settings: cast(OrdersSettings, settings).reconcile_interval_seconds,
    run_at_start=True,  # at once: finish what the last run of this service left PENDING
)
