# Shared shell settings for Interlock's scripts: where caches and tool
# binaries live (always outside the clone) and the pinned tool versions.
# Sourced, never executed.

INTERLOCK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INTERLOCK_CACHE="${INTERLOCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/interlock}"
export INTERLOCK_ROOT INTERLOCK_CACHE

# Cargo builds outside the clone so a fresh clone reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$INTERLOCK_CACHE/target}"

# Pinned versions: mesh/versions.toml, the one place (interlock-mesh reads
# it too). Each is part of its tool's cache key.
pinned() {
  local v
  v="$(sed -n "s/^$1 *= *\"\([^\"]*\)\".*/\1/p" "$INTERLOCK_ROOT/mesh/versions.toml")"
  [ -n "$v" ] || { printf '[interlock] error: %s is not pinned in mesh/versions.toml\n' "$1" >&2; return 1; }
  printf '%s' "$v"
}
ENVOY_VERSION="$(pinned envoy)"
SPIRE_VERSION="v$(pinned spire)"
GRPCURL_VERSION="v$(pinned grpcurl)"
POSTGRES_VERSION="$(pinned postgres)"
POSTGRES_MAJOR="${POSTGRES_VERSION%%.*}"

# A value from mesh/topology.toml: topology_value SECTION KEY. For scripts
# that run before anything is built (postgres.sh); the rest ask the
# generator (`interlock-mesh env`).
topology_value() {
  awk -v section="[$1]" -v key="$2" '
    /^\[/ { in_section = ($1 == section); next }
    in_section && $1 == key && $2 == "=" { gsub(/"/, "", $3); print $3; exit }
  ' "$INTERLOCK_ROOT/mesh/topology.toml"
}

TOOLS_DIR="$INTERLOCK_CACHE/tools"
export PATH="$TOOLS_DIR/bin:$PATH"

log() { printf '[interlock] %s\n' "$*" >&2; }
die() { printf '[interlock] error: %s\n' "$*" >&2; exit 1; }
