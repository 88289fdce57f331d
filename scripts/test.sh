#!/usr/bin/env bash
# The whole test suite: starts the private PostgreSQL (installing it the
# first time), then runs every Rust test. Extra arguments go to cargo test.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$INTERLOCK_ROOT"

bash scripts/postgres.sh start
INTERLOCK_TEST_PG_URL="$(bash scripts/postgres.sh url)"
export INTERLOCK_TEST_PG_URL

log "running the test suite (cargo target: $CARGO_TARGET_DIR)"
cargo test --workspace --locked "$@"
