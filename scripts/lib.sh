# Shared shell settings for Interlock's scripts: where caches and tool
# binaries live (always outside the clone) and the pinned tool versions.
# Sourced, never executed.

INTERLOCK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INTERLOCK_CACHE="${INTERLOCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/interlock}"
export INTERLOCK_ROOT INTERLOCK_CACHE

# Cargo builds outside the clone so a fresh clone reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$INTERLOCK_CACHE/target}"

# Pinned versions. Move them deliberately; each is part of its cache key.
ENVOY_VERSION=1.40.0
SPIRE_VERSION=v1.15.3
GRPCURL_VERSION=v1.9.3
POSTGRES_MAJOR=15

TOOLS_DIR="$INTERLOCK_CACHE/tools"
export PATH="$TOOLS_DIR/bin:$PATH"

log() { printf '[interlock] %s\n' "$*" >&2; }
die() { printf '[interlock] error: %s\n' "$*" >&2; exit 1; }
