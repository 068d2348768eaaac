#!/bin/sh
# One database and one role per service, each role able to use its own database only.
#
# The postgres image runs this once, on the first start with an empty data volume (it is mounted
# into /docker-entrypoint-initdb.d by docker-compose.yml). Changing a password later therefore
# means ALTER ROLE by hand, or `docker compose down -v` to start from an empty volume.
#
# Least privilege, and why:
#   - no service connects as the superuser; each role is NOSUPERUSER NOCREATEDB NOCREATEROLE;
#   - REVOKE CONNECT from PUBLIC, so the orders role cannot even open the payments database
#     (a leaked orders password exposes orders' data only);
#   - each role owns its database and its public schema, because each service creates and alters
#     its own tables: its Alembic migrations (`python -m relayshop_platform.migrate <name>`) run as
#     that role before the service starts (the compose command; an initContainer in Kubernetes).
# The gateway keeps no data, so it gets no database.
set -eu

create_service_database() {
    # $1: service name, used as both role and database name; $2: that role's password.
    # psql variables (:"name" for identifiers, :'pw' for literals) quote safely, whatever the value.
    psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -v svc="$1" -v pw="$2" <<'SQL'
CREATE ROLE :"svc" LOGIN PASSWORD :'pw'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE DATABASE :"svc" OWNER :"svc";
REVOKE ALL ON DATABASE :"svc" FROM PUBLIC;
\connect :"svc"
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO :"svc";
SQL
}

# The maintenance database is for the superuser only.
psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -c 'REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;'

# One per service with tables in the service catalogue (make generate).
# >>> make generate: databases
create_service_database auth "$AUTH_DB_PASSWORD"
create_service_database orders "$ORDERS_DB_PASSWORD"
create_service_database payments "$PAYMENTS_DB_PASSWORD"
create_service_database inventory "$INVENTORY_DB_PASSWORD"
# <<< make generate: databases
