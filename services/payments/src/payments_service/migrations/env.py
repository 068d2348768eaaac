"""Alembic environment of payments: compared against the one table payments owns (migrate.py)."""

from relayshop_platform.migrate import owned_metadata, run_env

from payments_service.models import Payment

run_env(owned_metadata(Payment))
