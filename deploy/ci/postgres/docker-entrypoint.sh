#!/bin/sh
# The official postgres image's start-up contract, in short (CI stand-in; see the Dockerfile):
# on an empty PGDATA, initdb with POSTGRES_USER / POSTGRES_PASSWORD, run every *.sh and *.sql in
# /docker-entrypoint-initdb.d against a server listening on its Unix socket only, stop it; then
# run the command (postgres) as the postgres user, listening on every interface, password auth.
set -eu

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (as for the official image)}"
    export POSTGRES_USER="${POSTGRES_USER:-postgres}"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"

    pg_ctl --silent --wait --options="-c listen_addresses=''" start
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sh)
                echo "running $script"
                if [ -x "$script" ]; then "$script"; else . "$script"; fi
                ;;
            *.sql)
                echo "running $script"
                psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
                    --dbname "${POSTGRES_DB:-$POSTGRES_USER}" -f "$script"
                ;;
            *) ;;
        esac
    done
    pg_ctl --silent --wait --mode=fast stop
    echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
