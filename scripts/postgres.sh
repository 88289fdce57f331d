#!/usr/bin/env bash
# A private PostgreSQL cluster for Interlock, outside the clone.
#   postgres.sh start   install (Debian) if missing, initdb once, start if stopped
#   postgres.sh stop
#   postgres.sh restart fast shutdown and start (the fault suite's fault)
#   postgres.sh url     print the superuser URL (for tests and set-up only)
#   postgres.sh data-dir
# Idempotent. When run as root the cluster runs as the `postgres` user
# (PostgreSQL refuses to run as root) in /var/lib/postgresql.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PG_BIN="/usr/lib/postgresql/$POSTGRES_MAJOR/bin"
# The port is the topology's ([postgres] in mesh/topology.toml): read
# directly, since this runs before anything is built.
PG_PORT="${INTERLOCK_PG_PORT:-$(topology_value postgres port)}"
[ -n "$PG_PORT" ] || die "no [postgres] port in mesh/topology.toml"
if [ "$(id -u)" = 0 ]; then
  PG_HOME="${INTERLOCK_PG_HOME:-/var/lib/postgresql/interlock-$POSTGRES_MAJOR}"
  as_pg() { runuser -u postgres -- "$@"; }
else
  PG_HOME="${INTERLOCK_PG_HOME:-$INTERLOCK_CACHE/pg-$POSTGRES_MAJOR}"
  as_pg() { "$@"; }
fi
DATA="$PG_HOME/data"
PWFILE="$PG_HOME/superuser.password"

install() {
  [ -x "$PG_BIN/initdb" ] && return
  log "installing PostgreSQL $POSTGRES_MAJOR (Debian packages)"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "postgresql-$POSTGRES_MAJOR" >/dev/null
}

init() {
  [ -f "$DATA/PG_VERSION" ] && return
  log "creating cluster in $DATA (port $PG_PORT)"
  mkdir -p "$PG_HOME"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_HOME"
  # The superuser password is generated here and never leaves this folder.
  ( umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$PWFILE" )
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PWFILE"
  as_pg "$PG_BIN/initdb" -D "$DATA" -U postgres --auth=scram-sha-256 \
    --pwfile="$PWFILE" --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  cat >> "$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_HOME'
max_connections = 400
CONF
}

# Durability: a commit is acknowledged only once its WAL reached the
# operating system, so killing PostgreSQL (even -9) loses no acknowledged
# write. fsync stays off: this cluster serves tests and the local mesh on
# one machine, and survives process crashes, not a power cut (a
# production database keeps fsync on).
durability() {
  local conf="$DATA/postgresql.conf"
  sed -i '/^fsync = /d; /^synchronous_commit = /d; /^full_page_writes = /d' "$conf"
  printf 'fsync = off\nsynchronous_commit = on\nfull_page_writes = off\n' >> "$conf"
}

start() {
  install
  init
  durability
  if as_pg "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    return
  fi
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  as_pg "$PG_BIN/pg_ctl" -D "$DATA" -l "$PG_HOME/server.log" -w -t 60 start >/dev/null
}

case "${1:-}" in
  start) start ;;
  stop) as_pg "$PG_BIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1 || true ;;
  restart) durability; as_pg "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 restart -l "$PG_HOME/server.log" >/dev/null ;;
  url) echo "postgres://postgres:$(cat "$PWFILE")@127.0.0.1:$PG_PORT/postgres" ;;
  data-dir) echo "$DATA" ;;
  *) die "usage: $0 start|stop|restart|url|data-dir" ;;
esac
