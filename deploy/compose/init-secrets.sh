#!/usr/bin/env bash
# Creates the secrets compose.yaml expects under deploy/compose/secrets/
# (ignored by git): every secret the topology names (database passwords and
# URLs, the pepper, the key-sealing secret), the edge's TLS certificate and
# the sender's service account — made by the same code, under the same
# names, as the local mesh's (`interlock-mesh secrets`). Existing files are
# kept. Builds the generator if needed.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
cd "$INTERLOCK_ROOT"
cargo build -q --workspace --bins --locked
"$CARGO_TARGET_DIR/debug/interlock-mesh" secrets --out "$INTERLOCK_ROOT/deploy/compose/secrets"
echo "edge CA for grpcurl: deploy/compose/secrets/edge/ca.pem"
