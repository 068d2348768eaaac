"""Alembic environment of inventory: compared against the tables inventory owns (migrate.py)."""

from relayshop_platform.migrate import owned_metadata, run_env

from inventory_service.models import Product, Reservation

run_env(owned_metadata(Product, Reservation))
