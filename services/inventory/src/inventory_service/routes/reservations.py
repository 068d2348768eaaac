"""Reservations: the inventory half of the order saga. Internal operations, plus an audit list.

Each saga route needs a user token AND the token of an allowed calling service (require_caller),
so "reserve" means "a customer, via the orders service". A customer only ever sees their own
reservations: someone else's order id is a 404, exactly like an unknown one. The list is for
admin and support (read only), on inventory's own port: the gateway keeps every
/api/inventory/reservations path internal.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status
from relayshop_platform.db import DbSession
from relayshop_platform.errors import Conflict, NotFound
from relayshop_platform.roles import STAFF_READERS, Role
from relayshop_platform.security import CurrentUser, owned_or_staff, require_caller, require_roles
from relayshop_platform.tokens import Principal
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .. import stock
from ..config import Settings
from ..models import Reservation, ReservationIn, ReservationOut, ReservationStatus

router = APIRouter(prefix="/api/inventory/reservations", tags=["internal"])
OrderIdPath = Annotated[str, Path(min_length=1, max_length=64)]


async def _visible(session: AsyncSession, order_id: str, user: Principal) -> Reservation:
    reservation = await session.get(Reservation, order_id)
    if reservation is None or not owned_or_staff(reservation.owner_sub, user, staff=STAFF_READERS):
        raise NotFound(f"No reservation for order '{order_id}'.")
    return reservation


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ReservationOut,
    dependencies=[
        Depends(
            require_caller(
                services={"orders"}, roles={Role.CUSTOMER, Role.ADMIN}, scope="orders:write"
            )
        )
    ],
    responses={
        200: {"description": "This order_id was already reserved: the same reservation."},
        404: {"description": "An unknown sku"},
    },
)
async def reserve(
    body: ReservationIn,
    user: CurrentUser,
    session: DbSession,
    settings: Settings,
    response: Response,
) -> ReservationOut:
    """Hold stock for every item, all or nothing. 409 if any item lacks stock, 404 for an unknown
    sku. Idempotent per order_id: a repeat answers 200 with the existing reservation."""
    reservation, created = await stock.reserve(
        session,
        body.order_id,
        body.items,
        owner_sub=user.sub,
        ttl_seconds=settings.reservation_ttl_seconds,
    )
    if not created:
        if not owned_or_staff(reservation.owner_sub, user, staff={Role.ADMIN}):
            # Someone else's order id: say only that it is taken, nothing about its content.
            raise Conflict(f"The order id '{body.order_id}' is already in use.")
        response.status_code = status.HTTP_200_OK
    return ReservationOut.of(reservation)


@router.get(
    "",
    response_model=list[ReservationOut],
    tags=["reservations"],
    dependencies=[Depends(require_roles(*STAFF_READERS, scope="inventory:read"))],
)
async def list_reservations(
    session: DbSession,
    status_: Annotated[ReservationStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[ReservationOut]:
    """Admin and support, read only: reservations, oldest first, optionally of one status. The
    audit of the stock: available stock plus COMMITTED quantities is what the shop received."""
    query = select(Reservation).order_by(col(Reservation.created_at), col(Reservation.order_id))
    if status_ is not None:
        query = query.where(col(Reservation.status) == status_)
    reservations = await session.exec(query.limit(limit).offset(offset))
    return [ReservationOut.of(reservation) for reservation in reservations]


@router.get(
    "/{order_id}",
    response_model=ReservationOut,
    dependencies=[
        Depends(
            require_caller(
                services={"orders", "payments"},
                roles={Role.CUSTOMER, Role.ADMIN},
                scope="orders:write",
            )
        )
    ],
)
async def get_reservation(
    order_id: OrderIdPath, user: CurrentUser, session: DbSession
) -> ReservationOut:
    """The reservation of an order: its owner, support or admin, via orders or payments."""
    return ReservationOut.of(await _visible(session, order_id, user))


@router.post(
    "/{order_id}/commit",
    response_model=ReservationOut,
    dependencies=[
        Depends(
            require_caller(
                services={"payments"}, roles={Role.CUSTOMER, Role.ADMIN}, scope="orders:write"
            )
        )
    ],
)
async def commit_reservation(
    order_id: OrderIdPath, user: CurrentUser, session: DbSession
) -> ReservationOut:
    """HELD -> COMMITTED once the payment is captured (idempotent). 409 if released or expired."""
    owner_sub = None if user.has_any_role(STAFF_READERS) else user.sub
    return ReservationOut.of(await stock.commit(session, order_id, owner_sub=owner_sub))


@router.post(
    "/{order_id}/release",
    response_model=ReservationOut,
    dependencies=[
        Depends(
            require_caller(
                services={"orders", "payments"},
                roles={Role.CUSTOMER, Role.ADMIN},
                scope="orders:write",
            )
        )
    ],
)
async def release_reservation(
    order_id: OrderIdPath, user: CurrentUser, session: DbSession
) -> ReservationOut:
    """HELD or COMMITTED -> RELEASED; the stock comes back exactly once (idempotent)."""
    reservation = await _visible(session, order_id, user)
    await stock.release(session, order_id)
    await session.refresh(reservation)
    return ReservationOut.of(reservation)
