#!/usr/bin/env bash
# The compose deployment as an end-to-end target, on the engine of
# scripts/docker.sh with the images of scripts/images.sh:
#   scripts/compose-e2e.sh up      images, secrets, `docker compose up --wait`
#   scripts/compose-e2e.sh env     the exports the e2e suite needs to reach
#                                  it (engine, images, published ports)
#   scripts/compose-e2e.sh test    the e2e suite against it: the shared
#                                  tests (tests/e2e) and the compose-only
#                                  ones (tests/e2e_compose), as
#                                  INTERLOCK_E2E_TARGET=compose
#   scripts/compose-e2e.sh down    compose down -v (the engine keeps running)
#   scripts/compose-e2e.sh all     up, test, down (down also on failure)
# Published on 127.0.0.1 at $INTERLOCK_EDGE_PORT (default 18443) and
# $INTERLOCK_JAEGER_PORT (18686): not the local mesh's ports.
# Extra arguments after `test` go to cargo test (e.g. a test name filter).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$INTERLOCK_ROOT"
eval "$(bash scripts/docker.sh env)"
docker() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else command docker "$@"; fi; }
export INTERLOCK_EDGE_PORT="${INTERLOCK_EDGE_PORT:-18443}"
export INTERLOCK_JAEGER_PORT="${INTERLOCK_JAEGER_PORT:-18686}"
COMPOSE=(docker compose --profile fcm-local)

images() {
  local env
  env="$(bash scripts/images.sh)"
  eval "$env"
}

up() {
  images
  # The secrets compose.yaml names, made at run time (never committed).
  "$CARGO_TARGET_DIR/release/interlock-mesh" secrets --out deploy/compose/secrets >/dev/null
  "${COMPOSE[@]}" up -d --pull never --wait --wait-timeout 300 >/dev/null
  "${COMPOSE[@]}" ps --format 'table {{.Service}}\t{{.Image}}\t{{.Status}}'
}

down() {
  images >/dev/null 2>&1 || true
  "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
}

env_exports() {
  bash scripts/docker.sh env
  bash scripts/images.sh
  printf 'export INTERLOCK_EDGE_PORT=%q INTERLOCK_JAEGER_PORT=%q INTERLOCK_E2E_TARGET=compose\n' \
    "$INTERLOCK_EDGE_PORT" "$INTERLOCK_JAEGER_PORT"
}

# The suite as root on this machine (it enters containers' network
# namespaces and reads fcm-local's control socket through /proc).
test_all() {
  images
  export INTERLOCK_E2E_TARGET=compose
  cargo test --workspace --locked --test e2e --test e2e_compose "$@" -- --nocapture
}

case "${1:-}" in
  up) up ;;
  env) env_exports ;;
  test) shift; test_all "$@" ;;
  down) down ;;
  all) trap down EXIT; up; test_all ;;
  *) echo "usage: $0 up|env|test|down|all" >&2; exit 2 ;;
esac
