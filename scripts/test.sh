#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. unit and integration tests (a private PostgreSQL and a private SMTP
#      server, installed the first time; every service in-process with
#      fresh databases);
#   2. compose.yaml and the Dockerfile validated statically (compose-go, the
#      library `docker compose` uses; BuildKit's Dockerfile linter), and
#      checked to be what the topology generates;
#   3. the local mesh brought up (scripts/mesh.sh up: SPIRE, Envoy, the
#      services as their own Unix users) and the end-to-end tests in
#      tests/e2e run against it through the edge, sslyze on the edge's TLS
#      and PyJWT on its discovery document among them;
#   4. the benchmark suite in its quick form (scripts/bench.sh --quick: a
#      few seconds per scenario, figures printed, never judged), so it
#      cannot rot; skipped when a test filter is given. The mesh is stopped
#      after.
# Extra arguments go to both cargo test runs (e.g. a test name filter).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$INTERLOCK_ROOT"

bash scripts/postgres.sh start
INTERLOCK_TEST_PG_URL="$(bash scripts/postgres.sh url)"
export INTERLOCK_TEST_PG_URL
# Email goes through a real SMTP server (Postfix) whose Maildir tests read.
bash scripts/smtp.sh start
eval "$(bash scripts/smtp.sh env)"
export INTERLOCK_TEST_SMTP_ADDR INTERLOCK_TEST_SMTP_CA INTERLOCK_TEST_MAILDIR

log "unit and integration tests (cargo target: $CARGO_TARGET_DIR)"
cargo test --workspace --locked --exclude interlock-e2e "$@"

log "the container deployment, statically (no Docker engine here)"
bash scripts/install-tools.sh
cargo run -q --locked -p interlock-mesh -- render --check
compose-check compose.yaml Dockerfile

log "end-to-end tests against the local mesh"
export INTERLOCK_RUN_DIR="${INTERLOCK_RUN_DIR:-/var/lib/interlock/mesh}"
trap 'bash scripts/mesh.sh down || true' EXIT
bash scripts/mesh.sh up
# Selecting the workspace keeps the feature set (and the build) shared.
cargo test --workspace --locked --test e2e "$@" -- --nocapture

if [ $# -eq 0 ]; then
  log "the benchmark suite, quick (figures only)"
  bash scripts/bench.sh --quick
fi
