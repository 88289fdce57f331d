#!/usr/bin/env bash
# Creates the secrets compose.yaml expects under deploy/compose/secrets/
# (ignored by git): database passwords and URLs, the pepper, the key-sealing
# secret, the edge's TLS certificate and the sender's service account.
# Existing files are kept. Needs the workspace built (interlock-mesh).
set -euo pipefail
cd "$(dirname "$0")"
source ../../scripts/lib.sh
# The directory is private to you; the files inside are readable because
# compose bind-mounts file secrets with their host permissions and the
# containers run as other users (services 10001, postgres 999, envoy 101).
mkdir -p secrets/edge
chmod 700 secrets
rand() { head -c 48 /dev/urandom | base64 | tr -d '/+=' | cut -c1-40; }
keep() { [ -s "secrets/$1" ] || printf '%s' "$2" > "secrets/$1"; }
for svc in auth roles users notifications; do
  keep "${svc}_db_password" "$(rand)"
  keep "${svc}_database_url" "postgres://interlock_${svc}:$(cat "secrets/${svc}_db_password")@postgres-${svc}:5432/interlock_${svc}"
done
keep auth_pepper "$(rand)"
keep auth_seal_secret "$(rand)"
# The edge certificate and the service account come from the same code that
# makes them for the local mesh.
if [ ! -s secrets/edge/server.pem ] || [ ! -s secrets/fcm_service_account.json ]; then
  tmp=$(mktemp -d)
  (cd ../.. && cargo run -q --locked -p interlock-mesh -- certs --out "$tmp")
  cp "$tmp/edge/server.pem" "$tmp/edge/server-key.pem" "$tmp/edge/ca.pem" secrets/edge/
  cp "$tmp/secrets/fcm-service-account.json" secrets/fcm_service_account.json
  rm -rf "$tmp"
fi
chmod 644 secrets/*_* secrets/edge/*
echo "secrets ready in $(pwd)/secrets (edge CA for grpcurl: secrets/edge/ca.pem)"
