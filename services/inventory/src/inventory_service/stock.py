"""Every change to stock and reservations, each one safe under any concurrency.

The rule: never read stock, decide in Python, then write (two requests would both read 1 and both
sell it). Each change is ONE conditional UPDATE that the database applies atomically, and the
rowcount says whether it happened:

    UPDATE product SET stock = stock - :q WHERE sku = :sku AND stock >= :q     -- reserve
    UPDATE reservation SET status = 'RELEASED' WHERE order_id = :id AND status IN (...)  -- release

On PostgreSQL (READ COMMITTED) a concurrent UPDATE of the same row waits, then re-checks the WHERE
against the committed row; on SQLite writers are serialized. Either way stock never goes below
zero, and the CHECK constraint in models.py would refuse it if it ever tried.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from relayshop_platform.errors import Conflict, NotFound
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.sql.dml import Update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .models import Product, Reservation, ReservationItemIn, ReservationStatus, utcnow

log = logging.getLogger(__name__)

HELD, COMMITTED, RELEASED = (
    ReservationStatus.HELD,
    ReservationStatus.COMMITTED,
    ReservationStatus.RELEASED,
)

# (sku, name, price_cents, initial stock): the demo catalogue, one of them out of stock.
DEMO_PRODUCTS = (
    ("KB-001", "Mechanical keyboard", 8900, 100),
    ("MS-002", "Wireless mouse", 2900, 200),
    ("MN-003", "27-inch monitor", 24900, 50),
    ("HD-004", "Noise-cancelling headphones", 19900, 75),
    ("CB-005", "USB-C cable", 990, 500),
    ("WC-006", "4K webcam", 12900, 0),
)


async def _applied(session: AsyncSession, statement: Update) -> bool:
    """Run one conditional UPDATE; True if it changed a row. The ORM is told not to mirror the
    change into loaded objects (we re-read what we need), which keeps the SQL exactly as written."""
    result = await session.exec(statement.execution_options(synchronize_session=False))
    return result.rowcount == 1


async def seed_products(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Insert the demo products that are missing. Never touches an existing product's stock, so a
    restart does not undo what was sold or what the warehouse set."""
    async with sessionmaker() as session:
        existing = set((await session.exec(select(Product.sku))).all())
        missing = [
            Product(sku=sku, name=name, price_cents=price, stock=stock)
            for sku, name, price, stock in DEMO_PRODUCTS
            if sku not in existing
        ]
        if not missing:
            return
        session.add_all(missing)
        try:
            await session.commit()
        except IntegrityError:  # another replica seeded the same products at the same moment
            await session.rollback()


async def set_stock(session: AsyncSession, sku: str, stock: int) -> Product:
    changed = await _applied(
        session, update(Product).where(col(Product.sku) == sku).values(stock=stock)
    )
    await session.commit()
    product = await session.get(Product, sku, populate_existing=True)
    if not changed or product is None:
        raise NotFound(f"No product with sku '{sku}'.")
    return product


async def reserve(
    session: AsyncSession,
    order_id: str,
    lines: Sequence[ReservationItemIn],
    *,
    owner_sub: str,
    ttl_seconds: float,
) -> tuple[Reservation, bool]:
    """Hold stock for every line, or for none. Returns (reservation, created).

    The common case is one statement per line plus the INSERT: each conditional UPDATE takes the
    stock and, with RETURNING, reads the name and price in the same round trip. A repeated
    order_id is caught by the INSERT's primary key, whose rollback gives the stock back; only the
    failure paths read more, to say which sku is unknown or short.
    """
    # Always update products in sku order: two reservations that share products then lock rows in
    # the same order and cannot deadlock each other on PostgreSQL.
    taken: dict[str, tuple[str, int]] = {}
    short: list[str] = []
    for line in sorted(lines, key=lambda line: line.sku):
        row = (
            await session.exec(
                update(Product)
                .where(col(Product.sku) == line.sku, col(Product.stock) >= line.quantity)
                .values(stock=col(Product.stock) - line.quantity)
                .returning(col(Product.name), col(Product.price_cents))
                .execution_options(synchronize_session=False)
            )
        ).first()
        if row is None:
            short.append(line.sku)
        else:
            taken[line.sku] = (row[0], row[1])
    if short:
        await session.rollback()  # all-or-nothing: give back what the other lines took
        existing = await session.get(Reservation, order_id)
        if existing is not None:  # a repeat, after the stock ran out: the same reservation
            return existing, False
        known = set(
            (await session.exec(select(Product.sku).where(col(Product.sku).in_(short)))).all()
        )
        unknown = sorted(set(short) - known)
        if unknown:
            raise NotFound(f"Unknown sku: {', '.join(unknown)}.")
        raise Conflict(f"Not enough stock for: {', '.join(short)}.", skus=short)

    items: list[dict[str, Any]] = [
        {
            "sku": line.sku,
            "name": taken[line.sku][0],
            "quantity": line.quantity,
            "price_cents": taken[line.sku][1],
        }
        for line in lines
    ]
    reservation = Reservation(
        order_id=order_id,
        status=HELD,
        items=items,
        total_cents=sum(item["quantity"] * item["price_cents"] for item in items),
        owner_sub=owner_sub,
        expires_at=utcnow() + timedelta(seconds=ttl_seconds),
    )
    session.add(reservation)
    try:
        await session.commit()
    except IntegrityError:
        # This order_id is reserved already (a repeat, or a concurrent request that committed
        # first). The rollback undoes our stock updates too, so the order is reserved exactly
        # once: answer with the existing reservation.
        await session.rollback()
        winner = await session.get(Reservation, order_id)
        if winner is None:  # not a duplicate order_id after all: a real error
            raise
        return winner, False
    return reservation, True


async def commit(session: AsyncSession, order_id: str, *, owner_sub: str | None) -> Reservation:
    """HELD -> COMMITTED (idempotent), in one conditional UPDATE ... RETURNING. A RELEASED or
    expired reservation cannot be committed: its stock may already be sold to someone else.

    ``owner_sub`` limits the change to that owner's reservation (None: anyone's, for staff);
    any other order id is a 404, exactly like an unknown one."""
    held = (
        col(Reservation.order_id) == order_id,
        col(Reservation.status) == HELD,
        col(Reservation.expires_at) > utcnow(),
    )
    mine = () if owner_sub is None else (col(Reservation.owner_sub) == owner_sub,)
    committed = (
        await session.exec(
            update(Reservation)
            .where(*held, *mine)
            .values(status=COMMITTED)
            .returning(Reservation)
            .execution_options(synchronize_session=False)
        )
    ).first()
    await session.commit()
    if committed is not None:
        return committed[0]
    reservation = await session.get(Reservation, order_id)  # not committed by us: see why
    if reservation is None or (owner_sub is not None and reservation.owner_sub != owner_sub):
        raise NotFound(f"No reservation for order '{order_id}'.")
    if reservation.status == COMMITTED:
        return reservation
    if reservation.status == RELEASED:
        raise Conflict("The reservation was released; it can no longer be committed.")
    raise Conflict("The reservation has expired; it can no longer be committed.")


async def release(
    session: AsyncSession,
    order_id: str,
    from_statuses: Iterable[ReservationStatus] = (HELD, COMMITTED),
) -> bool:
    """-> RELEASED, giving the stock back exactly once: only the one request whose conditional
    status change succeeds returns stock, in the same transaction. True if this call released."""
    released = await _applied(
        session,
        update(Reservation)
        .where(
            col(Reservation.order_id) == order_id,
            col(Reservation.status).in_(list(from_statuses)),
        )
        .values(status=RELEASED),
    )
    if not released:
        await session.rollback()
        return False
    items = (
        await session.exec(select(Reservation.items).where(col(Reservation.order_id) == order_id))
    ).one()
    for item in sorted(items, key=lambda item: str(item["sku"])):
        await _applied(
            session,
            update(Product)
            .where(col(Product.sku) == item["sku"])
            .values(stock=col(Product.stock) + int(item["quantity"])),
        )
    await session.commit()
    return True


async def release_expired(
    sessionmaker: async_sessionmaker[AsyncSession], now: datetime | None = None, batch: int = 100
) -> int:
    """Release HELD reservations past their expiry; returns how many this call released."""
    now = now or utcnow()
    async with sessionmaker() as session:
        expired = (
            await session.exec(
                select(Reservation.order_id)
                .where(col(Reservation.status) == HELD, col(Reservation.expires_at) <= now)
                .limit(batch)
            )
        ).all()
    count = 0
    for order_id in expired:
        async with sessionmaker() as session:
            # Only from HELD: a reservation committed in the meantime is a sale, not an expiry.
            if await release(session, order_id, from_statuses=(HELD,)):
                count += 1
                log.info("released expired reservation %s", order_id)
    return count
