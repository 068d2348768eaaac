"""Discovery: where the endpoints are (RFC 8414 / OpenID Connect Discovery) and the public keys.

Both documents are public and cacheable. The JWKS cache lifetime is short (60 s) so that, after
a rotation, even a client that ignores our Redis "keys changed" event sees the new key soon; our
services also refetch at once on an unknown ``kid``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from relayshop_platform.relay import EXCHANGE_GRANT
from relayshop_platform.scopes import USER_SCOPES

from ..deps import Keys, Settings
from ..keys import ALGORITHM

router = APIRouter(prefix="/auth/.well-known", tags=["discovery"])


@router.get("/openid-configuration", summary="Authorization server metadata")
async def openid_configuration(settings: Settings) -> JSONResponse:
    issuer = settings.issuer  # the public URL (through the gateway): what clients must call
    document: dict[str, Any] = {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/token",
        "revocation_endpoint": f"{issuer}/revoke",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "grant_types_supported": [
            "password",
            "refresh_token",
            "client_credentials",
            EXCHANGE_GRANT,
        ],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "scopes_supported": list(USER_SCOPES),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "claims_supported": ["sub", "preferred_username", "roles"],
    }
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})


@router.get("/jwks.json", summary="The public signing keys (RFC 7517)")
async def jwks(keys: Keys) -> JSONResponse:
    return JSONResponse(keys.jwks(), headers={"Cache-Control": "public, max-age=60"})
