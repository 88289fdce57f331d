#!/usr/bin/env bash
# A Docker engine the project controls, for the compose deployment.
#   scripts/docker.sh up      install docker.io (Debian) if missing, build the
#                             pinned compose v2 plugin, start dockerd if none
#                             answers
#   scripts/docker.sh down    stop the dockerd this script started and undo
#                             what it left on the host (docker0, ip_forward,
#                             DOCKER* iptables chains, FORWARD policy)
#   scripts/docker.sh status  say what runs
#   scripts/docker.sh env     print the exports the other scripts need
#                             (DOCKER_HOST, DOCKER_CONFIG)
# Idempotent. State (pidfile, log, data-root, the host settings to restore)
# lives in $INTERLOCK_DOCKER_STATE, outside the clone. A dockerd that this
# script did not start is used and never stopped.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

STATE="${INTERLOCK_DOCKER_STATE:-/var/lib/interlock/docker}"
SOCK="$STATE/docker.sock"
PIDFILE="$STATE/dockerd.pid"
LOG="$STATE/dockerd.log"
SAVED="$STATE/host-before"
COMPOSE_VERSION="v$(pinned compose)"
# The CLI finds plugins in $DOCKER_CONFIG/cli-plugins: a config dir of ours,
# outside the clone, so the user's ~/.docker is left alone.
export DOCKER_CONFIG="$INTERLOCK_CACHE/docker-config"
export DOCKER_HOST="unix://$SOCK"

# Debian's docker.io (dockerd, containerd, runc, the CLI), iptables for its
# bridge networking and debootstrap for the base image.
install_engine() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]} (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Compose v2 from tools/compose (go install tool), once per go.mod/go.sum.
install_compose() {
  local src="$INTERLOCK_ROOT/tools/compose" key dir
  key="$(cat "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-16)"
  dir="$TOOLS_DIR/compose-$key"
  if [ ! -x "$dir/cmd" ]; then
    log "building docker compose $COMPOSE_VERSION from tools/compose (Go module proxy; minutes the first time)"
    (cd "$src" && GOBIN="$dir" CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go install tool)
  fi
  mkdir -p "$DOCKER_CONFIG/cli-plugins"
  ln -sf "$dir/cmd" "$DOCKER_CONFIG/cli-plugins/docker-compose"
  [ -f "$DOCKER_CONFIG/config.json" ] || printf '{}\n' >"$DOCKER_CONFIG/config.json"
}

# The Debian CLI (matching the 20.10 engine) even if another docker is
# first on PATH.
docker_cli() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi; }

answers() { docker_cli version >/dev/null 2>&1; }

ours() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

# What dockerd changes on the host, written once before the first start.
save_host() {
  [ -f "$SAVED" ] && return 0
  {
    echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
    echo "forward_policy=$(iptables -S FORWARD 2>/dev/null | sed -n 's/^-P FORWARD //p')"
    if ip link show docker0 >/dev/null 2>&1; then echo docker0=present; else echo docker0=absent; fi
  } >"$SAVED"
}

up() {
  install_engine
  install_compose
  mkdir -p "$STATE"
  if answers; then
    log "docker engine answers on $DOCKER_HOST"
  else
    save_host
    log "starting dockerd (data-root $STATE/data, log $LOG)"
    # containerd is started by dockerd itself (its own state under exec-root).
    nohup dockerd --host "unix://$SOCK" --pidfile "$PIDFILE" \
      --data-root "$STATE/data" --exec-root "$STATE/exec" \
      --storage-driver overlay2 --log-level warn >>"$LOG" 2>&1 &
    local i
    for i in $(seq 1 60); do answers && break; sleep 0.5; done
    answers || { tail -20 "$LOG" >&2; die "dockerd did not answer on $SOCK"; }
  fi
  docker_cli compose version >/dev/null || die "docker compose plugin not found in $DOCKER_CONFIG/cli-plugins"
  log "engine $(docker_cli version -f '{{.Server.Version}}'), $(docker_cli compose version --short 2>/dev/null | sed 's/^/compose /')"
}

# Host settings back to what they were before our dockerd.
restore_host() {
  [ -f "$SAVED" ] || return 0
  local ip_forward forward_policy docker0
  ip_forward="$(sed -n 's/^ip_forward=//p' "$SAVED")"
  forward_policy="$(sed -n 's/^forward_policy=//p' "$SAVED")"
  docker0="$(sed -n 's/^docker0=//p' "$SAVED")"
  if [ "$docker0" = absent ] && ip link show docker0 >/dev/null 2>&1; then
    ip link delete docker0
  fi
  # Bridges of user-defined networks that dockerd left (br-<id>).
  local br
  for br in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | grep '^br-' || true); do
    ip link delete "$br" || true
  done
  if command -v iptables >/dev/null; then
    local table chain
    for table in filter nat; do
      # Rules of the built-in chains that jump into DOCKER* chains or name
      # dockerd's bridges, then the DOCKER* chains themselves.
      iptables -t "$table" -S 2>/dev/null | grep -vE '^-A DOCKER' \
        | grep -E '^-A [A-Z]+ .*(-j DOCKER|-[io] (docker0|br-))' \
        | while read -r _ rule; do eval "iptables -t $table -D $rule" || true; done
      for chain in $(iptables -t "$table" -S 2>/dev/null | sed -n 's/^-N \(DOCKER[A-Z0-9-]*\)$/\1/p'); do
        iptables -t "$table" -F "$chain" || true
      done
      for chain in $(iptables -t "$table" -S 2>/dev/null | sed -n 's/^-N \(DOCKER[A-Z0-9-]*\)$/\1/p'); do
        iptables -t "$table" -X "$chain" || true
      done
    done
    [ -n "$forward_policy" ] && iptables -P FORWARD "$forward_policy"
  fi
  [ -n "$ip_forward" ] && echo "$ip_forward" >/proc/sys/net/ipv4/ip_forward
  rm -f "$SAVED"
}

down() {
  if ours; then
    local pid
    pid="$(cat "$PIDFILE")"
    log "stopping dockerd (pid $pid)"
    kill "$pid"
    local i
    for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && die "dockerd (pid $pid) did not stop"
  elif answers; then
    log "the docker engine on $DOCKER_HOST was not started by this script: left running"
    return 0
  fi
  if [ -f "$SAVED" ]; then
    restore_host
    log "engine stopped, host network restored"
  else
    log "no engine of ours running"
  fi
}

status() {
  if ours; then
    echo "dockerd: running (pid $(cat "$PIDFILE"), started by scripts/docker.sh, $DOCKER_HOST)"
  elif answers; then
    echo "dockerd: answering on $DOCKER_HOST (not started by scripts/docker.sh)"
  else
    echo "dockerd: not running"
  fi
  if [ -x "$DOCKER_CONFIG/cli-plugins/docker-compose" ]; then
    echo "compose: $("$DOCKER_CONFIG/cli-plugins/docker-compose" version --short 2>/dev/null || echo '?') ($DOCKER_CONFIG/cli-plugins)"
  else
    echo "compose: not installed"
  fi
  echo "ip_forward: $(cat /proc/sys/net/ipv4/ip_forward)"
  if command -v iptables >/dev/null; then echo "FORWARD policy: $(iptables -S FORWARD | sed -n 's/^-P FORWARD //p')"; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) printf 'export DOCKER_HOST=%q DOCKER_CONFIG=%q\n' "$DOCKER_HOST" "$DOCKER_CONFIG" ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
