"""Alembic environment of orders: compared against the one table orders owns (migrate.py)."""

from relayshop_platform.migrate import owned_metadata, run_env

from orders_service.models import Order

run_env(owned_metadata(Order))
