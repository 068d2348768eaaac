"""Alembic environment of auth: compared against the tables auth owns (migrate.py)."""

from relayshop_platform.migrate import owned_metadata, run_env

from auth_service.models import AccessTokenRecord, Client, RefreshToken, User, UserSession

run_env(owned_metadata(User, Client, UserSession, RefreshToken, AccessTokenRecord))
