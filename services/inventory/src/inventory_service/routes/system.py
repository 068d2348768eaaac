"""System routes: orders' reconciler, acting for no user, settles an interrupted order.

    GET  /api/inventory/system/reservations/{order_id}           the reservation, or 404
    POST /api/inventory/system/reservations/{order_id}/release   HELD or COMMITTED -> RELEASED

When orders crashed (or lost an answer) mid-saga, the customer's token is long gone, yet the
order's stock must still be given back or confirmed. These two routes take orders' own service
token as the bearer and nothing else (security.require_service): no user, so no ownership check;
in exchange they can only read a reservation and give stock back, never take any. The gateway
keeps every /api/inventory/system path internal.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from relayshop_platform.db import DbSession
from relayshop_platform.errors import NotFound
from relayshop_platform.security import require_service
from sqlmodel.ext.asyncio.session import AsyncSession

from .. import stock
from ..models import Reservation, ReservationOut

router = APIRouter(prefix="/api/inventory/system/reservations", tags=["internal"])
OrderIdPath = Annotated[str, Path(min_length=1, max_length=64)]


async def _found(session: AsyncSession, order_id: str) -> Reservation:
    reservation = await session.get(Reservation, order_id, populate_existing=True)
    if reservation is None:
        raise NotFound(f"No reservation for order '{order_id}'.")
    return reservation


@router.get(
    "/{order_id}",
    response_model=ReservationOut,
    dependencies=[Depends(require_service(services={"orders"}))],
)
async def get_reservation(order_id: OrderIdPath, session: DbSession) -> ReservationOut:
    """The reservation of an order, whoever owns it: for orders' reconciler only."""
    return ReservationOut.of(await _found(session, order_id))


@router.post(
    "/{order_id}/release",
    response_model=ReservationOut,
    dependencies=[Depends(require_service(services={"orders"}))],
)
async def release_reservation(order_id: OrderIdPath, session: DbSession) -> ReservationOut:
    """HELD or COMMITTED -> RELEASED; the stock comes back exactly once (idempotent)."""
    await _found(session, order_id)
    await stock.release(session, order_id)
    return ReservationOut.of(await _found(session, order_id))
