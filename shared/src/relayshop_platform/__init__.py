"""relayshop's platform library: what every service needs to trust a relayed token.

settings    one typed settings base, with the production guard against demo secrets
tokens      verify an access token locally (RFC 8725, RFC 9068) and build a Principal
jwks        the JWKS cache that every verifier reads keys from
revocation  revoked jti and per-user not-before, stored in Redis and mirrored in memory
security    FastAPI dependencies: CurrentUser, require_roles, require_caller
errors      the exception tree and its single mapping to HTTP answers
relay       the token relay (an httpx.Auth) and the service's own client_credentials token
db          async SQLModel engine and session per service
app         the common FastAPI wiring: health, errors, request ids, docs login
"""
