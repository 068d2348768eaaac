"""Startup data: the demo accounts of docs/api.md, section 2, and the service clients.

Idempotent: an existing account is left alone (its id, the token ``sub``, stays stable across
restarts). A service client's secret hash is replaced when the configured secret changed, so
rotating ``RELAYSHOP_ORDERS_CLIENT_SECRET`` only takes a restart of auth and orders.
The demo accounts are never created when ``RELAYSHOP_ENV=production`` (settings refuse it), and
a production auth refuses to start while one still exists with its published password (a
database carried over from a demo): anyone who read the README could sign in as admin.
"""

from __future__ import annotations

import logging
import time
import uuid

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .config import AuthSettings
from .models import Client, RefreshToken, User
from .passwords import hash_password, verify_password

log = logging.getLogger(__name__)

DEMO_USERS = (
    ("alice", "alice-password", "customer"),
    ("bob", "bob-password", "customer"),
    ("carol", "carol-password", "support"),
    ("walt", "walt-password", "warehouse"),
    ("admin", "admin-password", "admin"),
)


class DemoAccountsInProduction(RuntimeError):
    pass


async def seed(db: AsyncSession, settings: AuthSettings) -> None:
    if settings.env == "production":
        found = await demo_accounts_present(db)
        if found:
            raise DemoAccountsInProduction(
                "RELAYSHOP_ENV=production refuses to start: the database holds demo accounts "
                f"with their published passwords ({', '.join(found)}); delete them or change "
                "their passwords"
            )
    try:
        if settings.seed_demo_users and settings.env != "production":
            await _seed_demo_users(db)
        await _seed_service_clients(db, settings)
        # Housekeeping: expired refresh tokens can never be redeemed or reused any more.
        await db.exec(delete(RefreshToken).where(col(RefreshToken.expires_at) < int(time.time())))
        await db.commit()
    except IntegrityError:
        # Another auth replica seeded the same rows at the same moment: theirs are as good.
        await db.rollback()
        log.info("seed rows were created concurrently by another instance")


async def demo_accounts_present(db: AsyncSession) -> list[str]:
    """The demo accounts that exist and still accept their published password."""
    names = [username for username, _, _ in DEMO_USERS]
    users = (await db.exec(select(User).where(col(User.username).in_(names)))).all()
    passwords = {username: password for username, password, _ in DEMO_USERS}
    return sorted(
        [
            user.username
            for user in users
            if await verify_password(passwords[user.username], user.password_hash)
        ]
    )


async def _seed_demo_users(db: AsyncSession) -> None:
    existing = set((await db.exec(select(User.username))).all())
    for username, password, roles in DEMO_USERS:
        if username in existing:
            continue
        db.add(
            User(
                id=str(uuid.uuid4()),
                username=username,
                password_hash=await hash_password(password),
                roles=roles,
                created_at=int(time.time()),
            )
        )
        log.info("created demo account %s (%s)", username, roles)


async def _seed_service_clients(db: AsyncSession, settings: AuthSettings) -> None:
    for client_id, secret in settings.service_client_secrets().items():
        client = await db.get(Client, client_id)
        if client is None:
            db.add(Client(client_id=client_id, secret_hash=await hash_password(secret)))
            log.info("created service client %s", client_id)
        elif not await verify_password(secret, client.secret_hash):
            client.secret_hash = await hash_password(secret)
            db.add(client)
            log.info("updated the secret of service client %s", client_id)
