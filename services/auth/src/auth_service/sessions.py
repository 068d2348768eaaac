"""Sign-in sessions: start one, issue its tokens, rotate its refresh token, end it.

A session begins at a password sign-in and carries one ``sid``. Each refresh spends the refresh
token presented (single use) and hands out a new access + refresh token in the same session.

Refresh token reuse (RFC 9700 section 4.14.2): a spent refresh token coming back means that two
parties hold it, the client and possibly a thief, and we cannot tell which is which. So the
whole session ends: its refresh tokens stop working and its live access tokens are revoked.

"Spent" is a single conditional UPDATE (``... WHERE spent_at IS NULL``); the database decides
which of two concurrent refreshes wins, and the loser sees 0 rows and is treated as a reuse.
"""

from __future__ import annotations

import time
import uuid

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .config import AuthSettings
from .keys import KeyStore
from .models import AccessTokenRecord, RefreshToken, TokenResponse, User, UserSession
from .revoker import Revoker
from .tokens import USER_CLIENT_ID, mint_access_token, new_refresh_token, refresh_token_hash


class RefreshRejected(Exception):
    """The refresh token is unknown, expired, spent or its session ended (all invalid_grant)."""


async def start_session(db: AsyncSession, user: User, scope: str) -> UserSession:
    session = UserSession(
        sid=uuid.uuid4().hex, user_id=user.id, scope=scope, created_at=int(time.time())
    )
    db.add(session)
    await db.flush()  # the session row must exist before rows that reference it
    return session


async def issue_tokens(
    db: AsyncSession,
    settings: AuthSettings,
    keys: KeyStore,
    user: User,
    session: UserSession,
    scope: str | None = None,
) -> TokenResponse:
    """A new access token and a new refresh token in ``session``, committed together.
    ``scope`` may narrow the session's scope for this access token (RFC 6749 section 6)."""
    now = int(time.time())
    scope = scope or session.scope
    access = mint_access_token(
        keys,
        issuer=settings.issuer,
        audience=settings.user_token_audience(),
        ttl_seconds=settings.access_token_ttl_seconds,
        sub=user.id,
        roles=user.role_list,
        scope=scope,
        client_id=USER_CLIENT_ID,
        sid=session.sid,
    )
    refresh = new_refresh_token()
    # Keep the session's list of live access tokens short: drop the ones already expired.
    await db.exec(
        delete(AccessTokenRecord).where(
            col(AccessTokenRecord.sid) == session.sid, col(AccessTokenRecord.exp) < now
        )
    )
    db.add(AccessTokenRecord(jti=access.jti, sid=session.sid, exp=access.exp))
    db.add(
        RefreshToken(
            token_hash=refresh_token_hash(refresh),
            sid=session.sid,
            created_at=now,
            expires_at=now + settings.refresh_token_ttl_seconds,
        )
    )
    await db.commit()
    return TokenResponse(
        access_token=access.token,
        expires_in=settings.access_token_ttl_seconds,
        refresh_token=refresh,
        scope=scope,
    )


async def redeem_refresh_token(
    db: AsyncSession, revoker: Revoker, token: str
) -> tuple[User, UserSession]:
    """Spend ``token`` and return its user and session, or raise RefreshRejected.

    On reuse of a spent token the session is revoked first (this may raise RedisError after
    the database part is committed; the caller then answers 503).
    """
    now = int(time.time())
    token_hash = refresh_token_hash(token)
    row = await db.get(RefreshToken, token_hash)
    if row is None:
        raise RefreshRejected("unknown")
    session = await db.get(UserSession, row.sid)
    if session is None or session.revoked_at is not None:
        raise RefreshRejected("session ended")
    sid, expires_at, user_id = session.sid, row.expires_at, session.user_id
    spent = await db.exec(
        update(RefreshToken)
        .where(
            col(RefreshToken.token_hash) == token_hash,
            col(RefreshToken.spent_at).is_(None),
            col(RefreshToken.expires_at) > now,
        )
        .values(spent_at=now)
    )
    if spent.rowcount != 1:
        await db.rollback()
        if expires_at <= now:
            raise RefreshRejected("expired")
        await revoke_session(db, revoker, sid)
        raise RefreshRejected("reused")
    user = await db.get(User, user_id)
    if user is None:
        raise RefreshRejected("user gone")
    return user, session


async def revoke_session(db: AsyncSession, revoker: Revoker, sid: str) -> None:
    """End a session: its refresh tokens (database) and its live access tokens (Redis).

    The database part is committed first, so even if Redis then fails (RedisError, answered
    with 503) the session can no longer be refreshed; repeating the call finishes the job.
    """
    now = int(time.time())
    await db.exec(
        update(UserSession)
        .where(col(UserSession.sid) == sid, col(UserSession.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    await db.exec(
        update(RefreshToken)
        .where(col(RefreshToken.sid) == sid, col(RefreshToken.spent_at).is_(None))
        .values(spent_at=now)
    )
    live = (
        await db.exec(
            select(AccessTokenRecord).where(
                col(AccessTokenRecord.sid) == sid, col(AccessTokenRecord.exp) > now
            )
        )
    ).all()
    await db.commit()
    for record in live:
        await revoker.revoke_jti(record.jti, record.exp)


async def revoke_all_sessions(db: AsyncSession, revoker: Revoker, user_id: str) -> None:
    """Sign a user out everywhere: a "not before" for all their tokens plus every session."""
    sids = (
        await db.exec(
            select(UserSession.sid).where(
                col(UserSession.user_id) == user_id, col(UserSession.revoked_at).is_(None)
            )
        )
    ).all()
    for sid in sids:
        await revoke_session(db, revoker, sid)
    # The not-before has one-second granularity; revoking each session's jti above also catches
    # tokens issued earlier within the same second.
    await revoker.revoke_user(user_id)
