#!/usr/bin/env bash
# The end-to-end checks against the compose deployment (target "compose"),
# on the engine of scripts/docker.sh with the images of scripts/images.sh:
#   scripts/compose-e2e.sh up      images, secrets, `docker compose up --wait`
#   scripts/compose-e2e.sh test    the checks below, against the running stack
#   scripts/compose-e2e.sh down    compose down -v (the engine keeps running)
#   scripts/compose-e2e.sh all     up, test, down (down also on failure)
# Published on 127.0.0.1 at $INTERLOCK_EDGE_PORT (default 18443) and
# $INTERLOCK_JAEGER_PORT (18686): not the local mesh's ports.
#
# Checks: grpcurl lists only the external services; the journey (register,
# login, GetMe) with the real grpcurl; refusals (no token, an internal
# service at the edge); push: a notification created from auth's network
# namespace through its egress sidecar is delivered to fcm-local; a trace
# read back from Jaeger's API; identity (a container without a workload
# label gets no SVID, one in auth's network namespace is not auth, one
# labelled auth is); a restarted service and database keep their data; the
# SPIRE agent killed and brought back, a restarted sidecar gets its SVID
# again and calls succeed.
# Local-mesh-only tests of tests/e2e (Unix users, process-compose's logs,
# the SVID rotation timing of the local TTL) are not run here; see the
# README.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$INTERLOCK_ROOT"
eval "$(bash scripts/docker.sh env)"
docker() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else command docker "$@"; fi; }
export INTERLOCK_EDGE_PORT="${INTERLOCK_EDGE_PORT:-18443}"
export INTERLOCK_JAEGER_PORT="${INTERLOCK_JAEGER_PORT:-18686}"
COMPOSE=(docker compose --profile fcm-local)
CA="$INTERLOCK_ROOT/deploy/compose/secrets/edge/ca.pem"
EDGE="localhost:$INTERLOCK_EDGE_PORT"
failures=0

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

check() {
  local name=$1; shift
  if "$@"; then
    printf '[compose-e2e] ok    %s\n' "$name" >&2
  else
    printf '[compose-e2e] FAIL  %s\n' "$name" >&2
    failures=$((failures + 1))
  fi
}

skip() { printf '[compose-e2e] skip  %s: %s\n' "$1" "$2" >&2; }

gc() { grpcurl -cacert "$CA" "$@"; }

PASSWORD='correct horse battery'
register_login() {
  local login=$1
  gc -d "{\"login\":\"$login\",\"email\":\"$login@example.com\",\"password\":\"$PASSWORD\",\"first_name\":\"Ada\",\"last_name\":\"Lovelace\"}" \
    "$EDGE" interlock.auth.v1.AuthService/Register >/dev/null || return 1
  gc -d "{\"login_or_email\":\"$login\",\"password\":\"$PASSWORD\"}" "$EDGE" interlock.auth.v1.AuthService/Login \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])'
}
login() {
  gc -d "{\"login_or_email\":\"$1\",\"password\":\"$PASSWORD\"}" "$EDGE" interlock.auth.v1.AuthService/Login \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])'
}
get_me() { gc -H "authorization: Bearer $1" "$EDGE" interlock.users.v1.UsersService/GetMe; }
user_id() { get_me "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }

# retry SECONDS CMD...: until CMD succeeds.
retry() {
  local until=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ "$SECONDS" -lt "$until" ] || return 1; sleep 1; done
}

t_list() {
  [ "$(gc "$EDGE" list | tr '\n' ' ')" = "interlock.auth.v1.AuthService interlock.notifications.v1.NotificationsService interlock.roles.v1.RolesAdmin interlock.users.v1.UsersService " ]
}

t_journey() {
  local l token
  l="journey$RANDOM$RANDOM"
  token="$(register_login "$l")" || return 1
  get_me "$token" | grep -q "\"login\": \"$l\""
}

t_refusals() {
  local out
  # No token: UNAUTHENTICATED at the edge.
  out="$(gc "$EDGE" interlock.users.v1.UsersService/GetMe 2>&1)" && return 1
  grep -q Unauthenticated <<<"$out" || { echo "$out" >&2; return 1; }
  # An internal service is refused at the edge, even with a user's token.
  local token
  token="$(register_login "refuse$RANDOM$RANDOM")" || return 1
  out="$(gc -H "authorization: Bearer $token" -import-path proto -proto interlock/notifications/v1/notifications.proto \
    -d '{}' "$EDGE" interlock.notifications.v1.NotificationsInternal/Create 2>&1)" && { echo "$out" >&2; return 1; }
  grep -qE 'Unimplemented|PermissionDenied|NotFound' <<<"$out" || { echo "$out" >&2; return 1; }
}

# A throwaway container in auth's network namespace, with the given extra
# docker-run flags, running the SPIRE agent's CLI against the agent socket.
fetch_svid() {
  docker run --rm "$@" -v interlock_spire-agent-socket:/run/spire/sockets:ro \
    --entrypoint /opt/spire/bin/spire-agent "$INTERLOCK_IMAGE_SPIRE_AGENT" \
    api fetch x509 -socketPath /run/spire/sockets/agent.sock -timeout 5s 2>&1
}

t_identity() {
  local out
  # No workload label: no identity.
  out="$(fetch_svid)" && { echo "$out" >&2; return 1; }
  # In auth's network namespace, but not auth's container: no identity.
  out="$(fetch_svid --network container:interlock-auth-1)" && { echo "$out" >&2; return 1; }
  # Another service's label: that service's identity only (the docker
  # attestor trusts labels: whoever may start containers on this engine
  # may claim any workload, as docs/security.md says of the engine).
  out="$(fetch_svid --label org.interlock.workload=roles)" || { echo "$out" >&2; return 1; }
  echo "$out" | grep -q 'spiffe://interlock.local/svc/roles' || return 1
  ! echo "$out" | grep -q 'svc/auth'
}

# grpcurl run in auth's network namespace: through auth's egress sidecar.
as_auth() {
  docker run --rm --network container:interlock-auth-1 \
    -v "$TOOLS_DIR/bin/grpcurl:/usr/local/bin/grpcurl:ro" -v "$INTERLOCK_ROOT/proto:/proto:ro" \
    --entrypoint grpcurl "$INTERLOCK_IMAGE_ENVOY" -plaintext -import-path /proto \
    -proto interlock/notifications/v1/notifications.proto "$@"
}

t_push() {
  local l token uid device id
  l="push$RANDOM$RANDOM"
  token="$(register_login "$l")" || return 1
  uid="$(user_id "$token")" || return 1
  device="e2e-device-$RANDOM$RANDOM"
  gc -H "authorization: Bearer $token" -d "{\"fcm_token\":\"$device\",\"platform\":\"PLATFORM_ANDROID\"}" \
    "$EDGE" interlock.notifications.v1.NotificationsService/RegisterDevice >/dev/null || return 1
  id="$(as_auth -d "{\"text\":\"Your parcel has shipped\",\"recipient_ids\":[\"$uid\"]}" \
    127.0.0.1:15001 interlock.notifications.v1.NotificationsInternal/Create \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')" || return 1
  # The sender delivers it to fcm-local and reports it delivered.
  delivered() {
    as_auth -d "{\"id\":\"$id\"}" 127.0.0.1:15001 interlock.notifications.v1.NotificationsInternal/GetDeliveryReport \
      | python3 -c 'import json,sys; r=json.load(sys.stdin); s=json.dumps(r); sys.exit(0 if "DELIVERED" in s or "\"delivered\": 1" in s or "\"sent\"" in s.lower() else 1)'
  }
  retry 30 delivered || { as_auth -d "{\"id\":\"$id\"}" 127.0.0.1:15001 interlock.notifications.v1.NotificationsInternal/GetDeliveryReport >&2; return 1; }
}

t_trace() {
  jaeger_has_services() {
    curl -fsS "http://127.0.0.1:$INTERLOCK_JAEGER_PORT/api/services" \
      | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"] or []; sys.exit(0 if any("auth" in s for s in d) else 1)'
  }
  retry 30 jaeger_has_services || { curl -s "http://127.0.0.1:$INTERLOCK_JAEGER_PORT/api/services" >&2; return 1; }
  local svc
  svc="$(curl -fsS "http://127.0.0.1:$INTERLOCK_JAEGER_PORT/api/services" | python3 -c 'import json,sys; print([s for s in json.load(sys.stdin)["data"] if "auth" in s][0])')"
  curl -fsS "http://127.0.0.1:$INTERLOCK_JAEGER_PORT/api/traces?service=$svc&limit=1" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; sys.exit(0 if d and d[0]["spans"] else 1)'
}

t_restart_keeps_data() {
  local l token
  l="restart$RANDOM$RANDOM"
  token="$(register_login "$l")" || return 1
  # The sidecars follow their services (depends_on restart: true), but may
  # race their service's start and exit (128: no namespace to join yet):
  # `up --wait` brings anything exited back, as an operator would.
  "${COMPOSE[@]}" restart postgres-users postgres-auth users auth >/dev/null 2>&1 || true
  "${COMPOSE[@]}" up -d --pull never --wait --wait-timeout 120 >/dev/null 2>&1 || return 1
  # The account (auth's database) and the profile (users') survived.
  login_get_me() { local t; t="$(login "$1")" && get_me "$t" | grep -q "\"login\": \"$1\""; }
  retry 90 login_get_me "$l"
}

t_agent_back() {
  docker kill interlock-spire-agent-1 >/dev/null || return 1
  "${COMPOSE[@]}" up -d --pull never --wait --wait-timeout 120 spire-agent >/dev/null 2>&1 || return 1
  # A sidecar started after the agent came back gets its SVID again.
  "${COMPOSE[@]}" restart users-sidecar >/dev/null 2>&1 || return 1
  local l token
  l="agent$RANDOM$RANDOM"
  retry 60 register_login "$l" || return 1
  token="$(login "$l")"
  retry 30 get_me "$token"
}

test_all() {
  images
  check "grpcurl lists only the external services" t_list
  check "journey with grpcurl (register, login, GetMe)" t_journey
  check "refusals (no token; an internal service at the edge)" t_refusals
  check "identity by container label (none without; not auth in auth's netns)" t_identity
  check "push delivered to fcm-local" t_push
  check "a trace read back from Jaeger's API" t_trace
  check "restart of services and databases keeps data" t_restart_keeps_data
  check "SPIRE agent killed and back: SVIDs again, calls succeed" t_agent_back
  skip "rotation, hostile, process logs" "local mesh only (Unix users, process-compose, the local SVID TTL)"
  [ "$failures" -eq 0 ] || die "$failures compose e2e check(s) failed"
  log "compose e2e: all checks passed"
}

case "${1:-}" in
  up) up ;;
  only) images; shift; for t in "$@"; do check "$t" "$t"; done; [ "$failures" -eq 0 ] ;;
  test) test_all ;;
  down) down ;;
  all) trap down EXIT; up; test_all ;;
  *) echo "usage: $0 up|test|down|all" >&2; exit 2 ;;
esac
