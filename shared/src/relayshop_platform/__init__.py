"""relayshop's platform library: what every service needs to trust a relayed token.

catalogue   the service catalogue: the one list of services, their ports, prefixes and calls
settings    one typed settings base, with the production guard against demo secrets
tokens      verify an access token locally (RFC 8725, RFC 9068) and build a Principal
jwks        the JWKS cache that every verifier reads keys from
revocation  revoked jti and per-user not-before, stored in Redis and mirrored in memory
security    FastAPI dependencies: CurrentUser, require_roles, require_caller
errors      the exception tree and its single mapping to HTTP answers
relay       the token relay (an httpx.Auth) and the service's own client_credentials token
db          async SQLModel engine and session per service
app         the common FastAPI wiring: health, errors, request ids, docs, background tasks
tasks       PeriodicTask: background work every few seconds, started and stopped with the app
redis_acl   who may do what in Redis: one ACL user per service

Each module's ``__all__`` names what a service is meant to use. The dependencies a handler asks
for: CurrentUser (security), DbSession (db), HttpClient and Relay (relay), and its service's own
typed ``Settings`` (get_app_settings, declared in each service's config.py).
The development and test harness (devstack, test tokens, embedded Redis) is relayshop_devtools,
a package of its own that no image installs.
"""
