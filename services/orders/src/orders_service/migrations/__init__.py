"""The orders service's schema migrations (Alembic); see relayshop_platform.migrate."""
