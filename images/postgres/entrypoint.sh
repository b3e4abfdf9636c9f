#!/bin/sh
# Start PostgreSQL on $PGDATA. On an empty volume, first initialise it (scram-sha-256, data checksums) and
# create the app's role and database, the role's password read from $APP_DB_PASSWORD_FILE: a secret file,
# never an environment variable or a command-line argument. On a volume that holds data, touch nothing.
set -eu

fail() { echo "hostscale-postgres: $*" >&2; exit 1; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -r "$APP_DB_PASSWORD_FILE" ] || fail "APP_DB_PASSWORD_FILE=$APP_DB_PASSWORD_FILE is missing or unreadable"
  [ -s "$APP_DB_PASSWORD_FILE" ] || fail "APP_DB_PASSWORD_FILE=$APP_DB_PASSWORD_FILE is empty"
  echo "hostscale-postgres: empty data directory, initialising $PGDATA"
  # The superuser gets no password: it can only log in through the local socket as the postgres OS user.
  initdb --pgdata="$PGDATA" --username=postgres --auth-local=peer --auth-host=reject \
         --data-checksums --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  cat > "$PGDATA/pg_hba.conf" <<'HBA'
# TYPE  DATABASE  USER      ADDRESS  METHOD
local   all       postgres           peer
host    all       postgres  all      reject
host    all       all       all      scram-sha-256
HBA
  # Initialise over a private socket only, so no client (nor the healthcheck) sees the server before the
  # role exists.
  init_socket=$(mktemp -d)
  pg_ctl --pgdata="$PGDATA" --silent --wait -o "-c listen_addresses='' -c unix_socket_directories=$init_socket" start
  psql --quiet --no-psqlrc -v ON_ERROR_STOP=1 --host="$init_socket" --username=postgres --dbname=postgres \
       -v app_user="$APP_DB_USER" -v app_db="$APP_DB_NAME" <<'SQL'
\set app_password `cat "$APP_DB_PASSWORD_FILE"`
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user";
SQL
  pg_ctl --pgdata="$PGDATA" --silent --wait -m fast stop
  rmdir "$init_socket"
  echo "hostscale-postgres: initialised; role $APP_DB_USER owns database $APP_DB_NAME"
fi

postgres -D "$PGDATA" -c listen_addresses='*' -c max_connections="$POSTGRES_MAX_CONNECTIONS" &
pid=$!
# SIGTERM (docker stop, Swarm) means a *fast* shutdown: Postgres' own reaction to SIGTERM waits for every
# client to disconnect, and pooled app connections never do.
stopping=""
trap 'stopping=1; kill -INT "$pid"' TERM INT
status=0
wait "$pid" || status=$?
# A trapped signal interrupts the first wait; the second collects Postgres' own exit status.
if [ -n "$stopping" ]; then
  status=0
  wait "$pid" || status=$?
fi
exit "$status"
