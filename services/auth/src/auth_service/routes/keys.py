"""Signing key administration (admin only; docs/api.md, section 6).

    POST /auth/admin/keys/rotate        a new key signs from now on; the old one stays in the
                                        JWKS until the tokens it signed have expired
    POST /auth/admin/keys/{kid}/retire  drop a previous key now (e.g. it leaked): its tokens
                                        fail everywhere once the services have refetched

After each change auth announces it on Redis, and every service refetches the JWKS at once.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from redis.exceptions import RedisError
from relayshop_platform.errors import Conflict, NotFound
from relayshop_platform.security import require_roles

from ..deps import Keys, RevokerDep
from ..keys import KeyInUse, KeyNotFound, KeyStore
from ..models import SigningKeys
from ..revoker import Revoker

router = APIRouter(
    prefix="/auth/admin/keys", tags=["admin"], dependencies=[Depends(require_roles("admin"))]
)
log = logging.getLogger("auth.keys")


@router.post("/rotate", response_model=SigningKeys, summary="Make a new signing key current")
async def rotate(request: Request, keys: Keys, revoker: RevokerDep) -> SigningKeys:
    await keys.rotate()
    await _announce(request, revoker)
    return _describe(keys)


@router.post("/{kid}/retire", response_model=SigningKeys, summary="Drop a previous key now")
async def retire(kid: str, request: Request, keys: Keys, revoker: RevokerDep) -> SigningKeys:
    try:
        await keys.retire(kid)
    except KeyNotFound:
        raise NotFound("No published signing key has this kid.") from None
    except KeyInUse:
        raise Conflict("The current signing key cannot be retired; rotate first.") from None
    await _announce(request, revoker)
    return _describe(keys)


async def _announce(request: Request, revoker: Revoker) -> None:
    # Auth's own verifier may hold tokens signed by a retired key in its cache: forget them now.
    request.app.state.verifier.forget()
    try:
        await revoker.keys_changed()
    except (RedisError, OSError):
        # The change is saved either way. A service that lost Redis too refetches the JWKS when
        # it reconnects (RevocationMirror does so after every resync); a new kid triggers a
        # refetch anyway. Worth an operator's attention, not a failed answer.
        log.warning("could not announce the key change on Redis; services refetch on reconnect")


def _describe(keys: KeyStore) -> SigningKeys:
    return SigningKeys(
        current_kid=keys.current.kid, published_kids=[key.kid for key in keys.published()]
    )
