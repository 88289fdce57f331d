#!/usr/bin/env bash
# The local mesh: PostgreSQL, the SMTP server (Postfix, scripts/smtp.sh),
# SPIRE server and agent, one Envoy sidecar per service, the services, and
# the edge — real programs, as local processes.
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
# Where `up` installs the binaries, the generator among them.
BIN_DIR="$RUN_DIR/bin"

[ "$(id -u)" = 0 ] || exec sudo -E "$0" "$@"

# The mesh's facts (ports, sockets, workloads, binaries: MESH_*) come from
# the generator, `interlock-mesh env`: the freshest build first, else the
# copy installed by the last `up`.
facts() {
  local gen out
  for gen in "$CARGO_TARGET_DIR/release/interlock-mesh" "$BIN_DIR/interlock-mesh"; do
    [ -x "$gen" ] || continue
    out="$("$gen" env --run-dir "$RUN_DIR" --bin-dir "$BIN_DIR" 2>/dev/null)" || continue
    eval "$out"
    return 0
  done
  return 1
}

build() {
  # Optimised code: the mesh is what users run and what the bench measures.
  log "building the services (release)"
  cargo build --release --workspace --bins --locked
}

# For down, status and logs. No generator at all: `up` never ran here, so
# nothing runs. One that cannot answer (built before `env` existed): build.
need_facts() {
  facts && return 0
  if [ ! -e "$BIN_DIR/interlock-mesh" ] && [ ! -e "$CARGO_TARGET_DIR/release/interlock-mesh" ]; then
    log "no mesh was set up in $RUN_DIR"
    exit 0
  fi
  build && facts || die "interlock-mesh cannot tell the mesh's facts"
}

# process-compose's own diagnostics go to a log, not the terminal.
# No TCP server: process-compose's API can replace any process's command.
pc() {
  mkdir -p "$MESH_LOG_DIR"
  process-compose --unix-socket "$MESH_CONTROL_SOCKET" "$@" 2>>"$MESH_LOG_DIR/process-compose-cli.log"
}

running() { pc process list >/dev/null 2>&1; }

users() {
  local u
  for u in $MESH_UNIX_USERS; do
    id -u "$u" >/dev/null 2>&1 ||
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$u"
  done
}

install_binaries() {
  mkdir -p "$MESH_BIN_DIR"
  chmod 755 "$MESH_RUN_DIR" "$MESH_BIN_DIR"
  local b
  for b in $MESH_TOOLS; do
    install -m 755 "$(readlink -f "$TOOLS_DIR/bin/$b")" "$MESH_BIN_DIR/$b"
  done
  for b in $MESH_BINARIES; do
    install -m 755 "$CARGO_TARGET_DIR/release/$b" "$MESH_BIN_DIR/$b"
  done
}

wait_ready() {
  local deadline=$((SECONDS + ${INTERLOCK_MESH_TIMEOUT:-240}))
  until curl -sf --unix-socket "$MESH_EDGE_ADMIN_SOCKET" http://localhost/ready >/dev/null 2>&1; do
    # A process whose dependency failed is skipped: no point in waiting.
    if [ $SECONDS -ge $deadline ] || pc process list 2>/dev/null | grep -q Skipped; then
      # Logs first, the process states last: what is restarting or was
      # skipped is then at the end of a truncated CI log.
      log "the mesh did not become ready; the logs' last lines:"
      for f in "$MESH_LOG_DIR"/*.log; do echo "== $f" >&2; tail -n 15 "$f" >&2; done
      log "process states (restarts count crashes):"
      pc process list -o wide >&2 || true
      log "the mesh did not become ready in ${INTERLOCK_MESH_TIMEOUT:-240} s (logs: $MESH_LOG_DIR)"
      return 1
    fi
    sleep 1
  done
}

# The grpcurl session a new user tries first, in $MESH_RUN_DIR/session.sh:
# printed by `up`, run as is by the end-to-end tests (e2e grpcurl.rs), so
# what is printed is what is tested. Full paths only: it must work when
# pasted into a fresh shell. Each run registers a new login.
write_session() {
  local file="$MESH_RUN_DIR/session.sh"
  cat > "$file" <<TXT
G="$TOOLS_DIR/bin/grpcurl -cacert $MESH_EDGE_CA"
LOGIN=demo\$(date +%s%N | cut -c8-16)
\$G localhost:$MESH_EDGE_PORT list
\$G -d @ localhost:$MESH_EDGE_PORT interlock.auth.v1.AuthService/Register <<EOF
{"login":"\$LOGIN","email":"\$LOGIN@example.com","password":"correct horse battery","first_name":"Ada","last_name":"Lovelace"}
EOF
# The confirmation code, from the mail the local SMTP server received:
CODE=\$($MESH_BIN_DIR/interlock-mesh mail --to "\$LOGIN@example.com" --code)
\$G -d @ localhost:$MESH_EDGE_PORT interlock.auth.v1.AuthService/ConfirmEmail <<EOF
{"login_or_email":"\$LOGIN","code":"\$CODE","password":"correct horse battery"}
EOF
TOKEN=\$(\$G -d @ localhost:$MESH_EDGE_PORT interlock.auth.v1.AuthService/Login <<EOF | sed -n 's/.*"accessToken": "\(.*\)".*/\1/p'
{"login_or_email":"\$LOGIN","password":"correct horse battery"}
EOF
)
\$G -H "authorization: Bearer \$TOKEN" localhost:$MESH_EDGE_PORT interlock.users.v1.UsersService/GetMe
TXT
  chmod 644 "$file"
}

session() {
  write_session
  cat <<TXT

Interlock is up. Try it through the edge with grpcurl: paste the lines
between the markers into any shell (they are $MESH_RUN_DIR/session.sh).

# ---8<---
$(cat "$MESH_RUN_DIR/session.sh")
# ---8<---

Traces: Jaeger at http://127.0.0.1:$MESH_JAEGER_PORT (API: /api/traces?service=users)
Logs: $MESH_LOG_DIR/   Stop: bash scripts/mesh.sh down
TXT
}

up() {
  bash scripts/install-tools.sh
  bash scripts/postgres.sh start
  bash scripts/smtp.sh start
  build
  facts || die "interlock-mesh env failed"
  if running; then
    log "stopping the running mesh first"
    pc down >/dev/null 2>&1 || true
  fi
  users
  install_binaries
  # INTERLOCK_TRACE_SAMPLING (0.0 to 1.0) overrides the topology's ratio.
  "$MESH_BIN_DIR/interlock-mesh" generate --run-dir "$MESH_RUN_DIR" --bin-dir "$MESH_BIN_DIR" \
    --pg-admin-url "$(bash scripts/postgres.sh url)" \
    ${INTERLOCK_TRACE_SAMPLING:+--sampling-ratio "$INTERLOCK_TRACE_SAMPLING"}
  log "starting the mesh (process-compose, API on $MESH_CONTROL_SOCKET)"
  pc up --config "$MESH_PROCESS_COMPOSE" --tui=false --detached >/dev/null
  wait_ready
  session
}

down() {
  need_facts
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
  status) need_facts; pc process list -o wide ;;
  logs) [ -n "${2:-}" ] || die "usage: $0 logs PROCESS"; need_facts; pc process logs "$2" -n "${3:-100}" ;;
  *) die "usage: $0 up|down|status|logs PROCESS" ;;
esac
