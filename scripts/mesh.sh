#!/usr/bin/env bash
# The local mesh: PostgreSQL, SPIRE server and agent, one Envoy sidecar per
# service, the services, and the edge — real programs, as local processes.
#   mesh.sh up       install what is missing, build, generate, start, wait
#   mesh.sh down     stop everything
#   mesh.sh status   what runs
#   mesh.sh logs P   the last lines of process P (e.g. users, sidecar-users)
# Needs root (or sudo): each workload runs as its own Unix user, which is
# what SPIRE attests.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$INTERLOCK_ROOT"

RUN_DIR="${INTERLOCK_RUN_DIR:-/var/lib/interlock/mesh}"
BIN_DIR="$RUN_DIR/bin"
EDGE_PORT=17443      # mesh/topology.toml [edge]
# The supervisor's API and the edge's admin API: Unix sockets that only root
# can open (interlock-mesh generate makes their directories 0700).
PC_SOCKET="$RUN_DIR/control/process-compose.sock"
EDGE_ADMIN_SOCKET="$RUN_DIR/edge/admin.sock"
WORKLOADS="edge auth roles users notifications sender"
export RUN_DIR BIN_DIR EDGE_PORT

[ "$(id -u)" = 0 ] || exec sudo -E "$0" "$@"

# process-compose's own diagnostics go to a log, not the terminal.
# No TCP server: process-compose's API can replace any process's command.
pc() { process-compose --unix-socket "$PC_SOCKET" "$@" 2>>"$RUN_DIR/logs/process-compose-cli.log"; }

running() { pc process list >/dev/null 2>&1; }

users() {
  for w in $WORKLOADS; do
    id -u "interlock-$w" >/dev/null 2>&1 ||
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "interlock-$w"
  done
}

install_binaries() {
  mkdir -p "$BIN_DIR"
  chmod 755 "$RUN_DIR" "$BIN_DIR"
  local src
  for b in envoy spire-server spire-agent jaeger; do
    src="$(readlink -f "$TOOLS_DIR/bin/$b")"
    install -m 755 "$src" "$BIN_DIR/$b"
  done
  for b in interlock-auth interlock-roles interlock-users interlock-notifications interlock-sender interlock-fcm-local interlock-mesh; do
    install -m 755 "$CARGO_TARGET_DIR/debug/$b" "$BIN_DIR/$b"
  done
}

wait_ready() {
  local deadline=$((SECONDS + ${INTERLOCK_MESH_TIMEOUT:-240}))
  until curl -sf --unix-socket "$EDGE_ADMIN_SOCKET" http://localhost/ready >/dev/null 2>&1; do
    # A process whose dependency failed is skipped: no point in waiting.
    if [ $SECONDS -ge $deadline ] || pc process list 2>/dev/null | grep -q Skipped; then
      log "the mesh did not become ready; process states:"
      pc process list -o wide >&2 || true
      for f in "$RUN_DIR"/logs/*.log; do echo "== $f" >&2; tail -n 15 "$f" >&2; done
      return 1
    fi
    sleep 1
  done
}

session() {
  local login="demo$RANDOM"
  cat <<TXT

Interlock is up. Try it through the edge with grpcurl:

  G="grpcurl -cacert $RUN_DIR/edge-ca.pem"
  \$G localhost:$EDGE_PORT list
  \$G -d '{"login":"$login","email":"$login@example.com","password":"correct horse battery","first_name":"Ada","last_name":"Lovelace"}' \\
      localhost:$EDGE_PORT interlock.auth.v1.AuthService/Register
  TOKEN=\$(\$G -d '{"login_or_email":"$login","password":"correct horse battery"}' \\
      localhost:$EDGE_PORT interlock.auth.v1.AuthService/Login | sed -n 's/.*"accessToken": "\\(.*\\)".*/\\1/p')
  \$G -H "authorization: Bearer \$TOKEN" localhost:$EDGE_PORT interlock.users.v1.UsersService/GetMe

Traces: Jaeger at http://127.0.0.1:16686 (API: /api/traces?service=users)
Logs: $RUN_DIR/logs/   Stop: bash scripts/mesh.sh down
TXT
}

up() {
  bash scripts/install-tools.sh
  bash scripts/postgres.sh start
  log "building the services"
  cargo build --workspace --bins --locked
  mkdir -p "$RUN_DIR/logs"
  if running; then
    log "stopping the running mesh first"
    pc down >/dev/null 2>&1 || true
  fi
  users
  install_binaries
  "$BIN_DIR/interlock-mesh" generate --run-dir "$RUN_DIR" --bin-dir "$BIN_DIR" \
    --pg-admin-url "$(bash scripts/postgres.sh url)"
  log "starting the mesh (process-compose, API on $PC_SOCKET)"
  pc up --config "$RUN_DIR/process-compose.yaml" --tui=false --detached >/dev/null
  wait_ready
  session
}

down() {
  mkdir -p "$RUN_DIR/logs"
  if running; then
    pc down >/dev/null
    log "mesh stopped"
  else
    log "the mesh is not running"
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) mkdir -p "$RUN_DIR/logs"; pc process list -o wide ;;
  logs) [ -n "${2:-}" ] || die "usage: $0 logs PROCESS"; pc process logs "$2" -n "${3:-100}" ;;
  *) die "usage: $0 up|down|status|logs PROCESS" ;;
esac
