#!/usr/bin/env bash
# The fault suite (tests/bench, `interlock-bench faults`): the local mesh
# under a steady mixed load while each piece in turn is killed -9,
# restarted, stopped or flooded; every acknowledged write is checked
# afterwards and every push counted. Needs root (it signals the mesh's
# processes and reads their databases).
#
#   bash scripts/faults.sh           full run (about 10 minutes); writes
#                                    docs/reliability.md and
#                                    docs/reliability.json
#   bash scripts/faults.sh --quick   shorter phases (what the test command
#                                    runs); written under the cache
#   ... --only NAME                  only the scenarios whose name contains
#                                    NAME (repeatable)
# Fails if any scenario loses or duplicates anything, errs after recovery,
# or errs where it must not (see docs/reliability.md). The mesh is left
# running (restarted by the last scenario).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

QUICK=""
ONLY=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK="--quick" ;;
    --only) ONLY+=(--only "$2"); shift ;;
    *) die "usage: bash scripts/faults.sh [--quick] [--only NAME]..." ;;
  esac
  shift
done

export INTERLOCK_RUN_DIR="${INTERLOCK_RUN_DIR:-/var/lib/interlock/mesh}"
OUT="docs/reliability.json"
if [ -n "$QUICK" ] || [ "${#ONLY[@]}" -gt 0 ]; then
  mkdir -p "$INTERLOCK_CACHE/faults"
  OUT="$INTERLOCK_CACHE/faults/$(date -u +%Y%m%dT%H%M%SZ)${QUICK:+-quick}.json"
fi

bash scripts/postgres.sh start
cargo build --release --workspace --bins --locked
bash scripts/mesh.sh up >/dev/null
log "fault suite${QUICK:+ (quick)}: results in $OUT and ${OUT%.json}.md"
"$CARGO_TARGET_DIR/release/interlock-bench" faults $QUICK "${ONLY[@]}" --out "$OUT"
