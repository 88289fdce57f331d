#!/bin/sh
# Turns compose secrets named INTERLOCK_<SVC>__<SECTION>__<KEY> (files in
# /run/secrets) into the environment variables the service reads, so that
# secrets live neither in the image nor in compose.yaml. Then runs the
# service (or the given command).
set -eu
for f in /run/secrets/INTERLOCK_*; do
  [ -f "$f" ] || continue
  name=$(basename "$f")
  value=$(cat "$f")
  export "$name=$value"
done
if [ "$#" -eq 0 ]; then
  exec "/usr/local/bin/$BINARY"
fi
exec "$@"
