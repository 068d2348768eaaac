"""Signing key administration (admin only; docs/api.md, section 6).

    POST /auth/admin/keys/rotate        a new key signs from now on; the old one stays in the
                                        JWKS until the tokens it signed have expired
    POST /auth/admin/keys/{kid}/retire  drop a previous key now (e.g. it leaked): its tokens
                                        fail everywhere once the services have refetched

After each change auth announces it on Redis, and every service refetches the JWKS at once.
Every service also refetches it every ``jwks_refresh_seconds`` on its own, which bounds how long
a retired key stays trusted if the announcement is lost. If the announcement cannot even be
published, retiring answers 503 saying so: the key is retired at auth, but an operator who
retired a leaked key must know the services may trust it until their next refresh.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from redis.exceptions import RedisError
from relayshop_platform.errors import Conflict, NotFound, UpstreamUnavailable
from relayshop_platform.roles import Role
from relayshop_platform.security import require_roles

from ..deps import Keys, RevokerDep, Settings
from ..keys import KeyInUse, KeyNotFound, KeyStore
from ..models import SigningKeys
from ..revoker import Revoker

router = APIRouter(
    prefix="/auth/admin/keys", tags=["admin"], dependencies=[Depends(require_roles(Role.ADMIN))]
)
log = logging.getLogger(__name__)


@router.post("/rotate", response_model=SigningKeys, summary="Make a new signing key current")
async def rotate(request: Request, keys: Keys, revoker: RevokerDep) -> SigningKeys:
    await keys.rotate()
    # Unannounced, a rotation is still safe: a token under the new kid makes each service
    # refetch the JWKS, and the old key stays valid until its tokens expire anyway.
    await _announce(request, revoker)
    return _describe(keys)


@router.post(
    "/{kid}/retire",
    response_model=SigningKeys,
    summary="Drop a previous key now",
    responses={503: {"description": "Retired at auth, but the services could not be told"}},
)
async def retire(
    kid: str, request: Request, keys: Keys, revoker: RevokerDep, settings: Settings
) -> SigningKeys:
    try:
        await keys.retire(kid)
    except KeyNotFound:
        raise NotFound("No published signing key has this kid.") from None
    except KeyInUse:
        raise Conflict("The current signing key cannot be retired; rotate first.") from None
    if not await _announce(request, revoker):
        raise UpstreamUnavailable(
            "The key is retired at auth, but the announcement to the services failed (Redis "
            "unreachable): each service trusts it until its next JWKS refresh, within "
            f"{settings.jwks_refresh_seconds:g} s."
        )
    return _describe(keys)


async def _announce(request: Request, revoker: Revoker) -> bool:
    """Tell every service to refetch the JWKS now; False if Redis could not carry it."""
    # Auth's own verifier may hold tokens signed by a retired key in its cache: forget them now.
    request.app.state.verifier.forget()
    try:
        await revoker.keys_changed()
    except (RedisError, OSError):
        log.warning("could not announce the key change on Redis; services refetch on schedule")
        return False
    return True


def _describe(keys: KeyStore) -> SigningKeys:
    return SigningKeys(
        current_kid=keys.current.kid, published_kids=[key.kid for key in keys.published()]
    )
