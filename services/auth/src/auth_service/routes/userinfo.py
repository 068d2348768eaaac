"""GET /auth/userinfo: who the bearer token speaks for (OpenID Connect Core section 5.3).

The token is checked by the platform's TokenVerifier, revocation included, exactly as every
other service checks it. The username lives here and not in the token (no personal data in a
JWT that every hop can read).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from relayshop_platform.db import DbSession
from relayshop_platform.errors import InvalidToken
from relayshop_platform.scopes import OPENID
from relayshop_platform.security import CurrentUser, require_scope

from ..models import User, UserInfo

router = APIRouter(prefix="/auth", tags=["auth"])


# OpenID Connect Core 5.3: the UserInfo endpoint serves tokens granted the openid scope.
@router.get(
    "/userinfo",
    response_model=UserInfo,
    summary="The signed-in user",
    dependencies=[Depends(require_scope(OPENID))],
)
async def userinfo(user: CurrentUser, db: DbSession) -> UserInfo:
    account = await db.get(User, user.sub)
    if account is None:
        raise InvalidToken("unknown_user", "The token's user no longer exists.")
    return UserInfo(sub=account.id, preferred_username=account.username, roles=account.role_list)
