#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. unit and integration tests (a private PostgreSQL and a private SMTP
#      server, installed the first time; every service in-process with
#      fresh databases);
#   2. compose.yaml and the Dockerfile validated statically (compose-go, the
#      library `docker compose` uses; BuildKit's Dockerfile linter), and
#      checked to be what the topology generates;
#   3. the local mesh brought up (scripts/mesh.sh up: SPIRE, Envoy, the
#      services as their own Unix users) and the end-to-end tests run
#      against it through the edge: the shared suite (tests/e2e) and the
#      local-only one (tests/e2e_local), sslyze on the edge's TLS and PyJWT
#      on its discovery document among them;
#   4. the benchmark suite in its quick form (scripts/bench.sh --quick: a
#      few seconds per scenario, figures printed, never judged), so it
#      cannot rot; then the fault suite in its quick form
#      (scripts/faults.sh --quick: every fault scenario with shorter phases;
#      fails on any lost or duplicated write, an error after recovery, or a
#      process that does not come back). Both skipped when a test filter is
#      given. The mesh is stopped after;
#   5. the container deployment for real: a Docker engine of our own
#      (scripts/docker.sh), the images built locally without a registry
#      (scripts/images.sh), `docker compose up --wait`, the same shared
#      e2e suite against the compose edge plus the compose-only tests
#      (scripts/compose-e2e.sh test), then compose down -v, the engine
#      stopped and the host network restored — on failure too.
#      INTERLOCK_SKIP_COMPOSE=1 leaves this phase out.
# The wall time of each phase is printed at the end.
# Extra arguments go to both cargo test runs (e.g. a test name filter).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$INTERLOCK_ROOT"

# phase NAME: closes the previous phase's clock, starts NAME's.
PHASES=()
phase_name="" phase_start=$SECONDS
phase() {
  [ -n "$phase_name" ] && PHASES+=("$(printf '%-28s %5ss' "$phase_name" $((SECONDS - phase_start)))")
  phase_name=$1 phase_start=$SECONDS
  [ -n "$phase_name" ] && log "phase: $phase_name"
  return 0
}
report() {
  local rc=$?
  phase ""
  log "wall time per phase:"
  local p
  for p in "${PHASES[@]}"; do log "  $p"; done
  return "$rc"
}
cleanup() {
  local rc=$?
  bash scripts/mesh.sh down || true
  if [ "${COMPOSE_STARTED:-0}" = 1 ]; then
    bash scripts/compose-e2e.sh down || true
    bash scripts/docker.sh down || true
  fi
  report || true
  exit "$rc"
}
trap cleanup EXIT

phase "unit and integration tests"
bash scripts/postgres.sh start
INTERLOCK_TEST_PG_URL="$(bash scripts/postgres.sh url)"
export INTERLOCK_TEST_PG_URL
# Email goes through a real SMTP server (Postfix) whose Maildir tests read.
bash scripts/smtp.sh start
eval "$(bash scripts/smtp.sh env)"
export INTERLOCK_TEST_SMTP_ADDR INTERLOCK_TEST_SMTP_CA INTERLOCK_TEST_MAILDIR

log "unit and integration tests (cargo target: $CARGO_TARGET_DIR)"
cargo test --workspace --locked --exclude interlock-e2e "$@"

phase "compose, statically"
log "the container deployment, statically (compose-go, BuildKit's linter)"
bash scripts/install-tools.sh
cargo run -q --locked -p interlock-mesh -- render --check
compose-check compose.yaml Dockerfile

phase "local mesh e2e"
log "end-to-end tests against the local mesh"
export INTERLOCK_RUN_DIR="${INTERLOCK_RUN_DIR:-/var/lib/interlock/mesh}"
bash scripts/mesh.sh up
# Selecting the workspace keeps the feature set (and the build) shared.
cargo test --workspace --locked --test e2e --test e2e_local "$@" -- --nocapture

if [ $# -eq 0 ]; then
  phase "bench, quick"
  log "the benchmark suite, quick (figures only)"
  bash scripts/bench.sh --quick
  phase "faults, quick"
  log "the fault suite, quick (fails on anything lost, duplicated or not back)"
  bash scripts/faults.sh --quick
fi
bash scripts/mesh.sh down

[ "${INTERLOCK_SKIP_COMPOSE:-0}" = 1 ] && { log "compose phase skipped (INTERLOCK_SKIP_COMPOSE=1)"; exit 0; }
phase "compose: engine"
COMPOSE_STARTED=1
bash scripts/docker.sh up
phase "compose: images"
# The release binaries the images carry (the local mesh's own).
cargo build --release --workspace --bins --locked
bash scripts/images.sh >/dev/null
phase "compose: up --wait"
bash scripts/compose-e2e.sh up
phase "compose: e2e"
bash scripts/compose-e2e.sh test "$@"
phase "compose: down"
bash scripts/compose-e2e.sh down
bash scripts/docker.sh down
COMPOSE_STARTED=0
