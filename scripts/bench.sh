#!/usr/bin/env bash
# The benchmark suite: brings up what it needs, runs every scenario of
# tests/bench (interlock-bench) and renders the figures.
#
#   bash scripts/bench.sh           full run (about 10 minutes); writes
#                                   docs/benchmarks.md, docs/benchmarks.json
#                                   and docs/benchmarks-getme.png
#   bash scripts/bench.sh --quick   a few seconds per scenario (CI): prints
#                                   the figures and writes them under the
#                                   cache, never judged, never into docs/
#
# Phases: a warm `mesh.sh up` (timed) at trace sampling 10%, the mesh
# scenarios, the same GetMe without Envoy (baseline), the mesh again at
# sampling 100% for the GetMe figures. The mesh is left as it was found:
# up (at the topology's sampling) if it was running, down otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

QUICK=""
case "${1:-}" in
  "") ;;
  --quick) QUICK="--quick" ;;
  *) die "usage: bash scripts/bench.sh [--quick]" ;;
esac

RUN_DIR="${INTERLOCK_RUN_DIR:-/var/lib/interlock/mesh}"
export INTERLOCK_RUN_DIR="$RUN_DIR"
BENCH="$CARGO_TARGET_DIR/release/interlock-bench"
OUT="$INTERLOCK_CACHE/bench/$(date -u +%Y%m%dT%H%M%SZ)${QUICK:+-quick}"
mkdir -p "$OUT"

was_running=false
if [ -S "$RUN_DIR/control/process-compose.sock" ] && bash scripts/mesh.sh status >/dev/null 2>&1; then
  was_running=true
fi
restore() {
  if $was_running; then
    bash scripts/mesh.sh up >/dev/null
  else
    bash scripts/mesh.sh down >/dev/null 2>&1 || true
  fi
}
trap restore EXIT

phase() { log "bench: $*"; }

# The plot and the report: matplotlib, pinned, in a venv outside the clone.
python_env() {
  local key venv
  key="$(sha256sum tools/bench/requirements.txt | cut -c1-16)"
  venv="$TOOLS_DIR/bench-python-$key"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    log "installing the report's Python packages (tools/bench/requirements.txt)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: \
      -r tools/bench/requirements.txt
  fi
  PYTHON="$venv/bin/python"
}
python_env

bash scripts/install-tools.sh
bash scripts/postgres.sh start
INTERLOCK_TEST_PG_URL="$(bash scripts/postgres.sh url)"
export INTERLOCK_TEST_PG_URL
phase "building (release)"
cargo build --release --workspace --bins --locked

# Start-up: build done, tools installed, so this is a warm `up`.
bash scripts/mesh.sh down >/dev/null 2>&1 || true
phase "warm mesh.sh up at trace sampling 10%"
start=$(date +%s.%N)
INTERLOCK_TRACE_SAMPLING=0.1 bash scripts/mesh.sh up >/dev/null
startup=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
log "the edge was ready after ${startup} s"
printf '{"phase":"startup","rows":[{"scenario":"Start-up","metric":"warm mesh.sh up to a ready edge","measured":%s,"unit":"s","target":"< 10","baseline":null,"baseline_of":null,"note":"mesh.sh down, then mesh.sh up with every tool and binary built"}],"series":[],"runs":[]}\n' \
  "$startup" >"$OUT/startup.json"

phase "scenarios through the mesh (sampling 10%)"
"$BENCH" mesh $QUICK --phase "mesh" --out "$OUT/mesh.json"

phase "GetMe without Envoy (baseline)"
"$BENCH" direct $QUICK --out "$OUT/direct.json"

phase "GetMe through the mesh at trace sampling 100%"
bash scripts/mesh.sh down >/dev/null
INTERLOCK_TRACE_SAMPLING=1.0 bash scripts/mesh.sh up >/dev/null
"$BENCH" mesh $QUICK --phase "sampling 100%" --out "$OUT/mesh-100.json"

machine="$OUT/machine.json"
{
  printf '{"cores": %s, "model": "%s", "memory_gib": %s, "kernel": "%s",' \
    "$(nproc)" "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)" \
    "$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)" "$(uname -r)"
  printf ' "rustc": "%s", "envoy": "%s", "spire": "%s", "postgres": "%s",' \
    "$(rustc --version)" "$ENVOY_VERSION" "$SPIRE_VERSION" "$POSTGRES_VERSION"
  printf ' "commit": "%s", "quick": %s, "command": "bash scripts/bench.sh%s"}\n' \
    "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$([ -n "$QUICK" ] && echo true || echo false)" "${QUICK:+ --quick}"
} >"$machine"

dest="docs"
[ -n "$QUICK" ] && dest="$OUT"
"$PYTHON" tools/bench/report.py --machine "$machine" --out "$dest" \
  "$OUT/startup.json" "$OUT/mesh.json" "$OUT/direct.json" "$OUT/mesh-100.json"
