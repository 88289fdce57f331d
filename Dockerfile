# syntax=docker/dockerfile:1
# One parameterised image per Interlock program:
#   docker build --build-arg BINARY=interlock-auth --target runtime -t interlock-auth .
# BINARY is one of the programs `interlock-mesh env` lists in MESH_BINARIES
# (the workloads' binaries from mesh/topology.toml, the local FCM server).
# The `spire-init` target is the SPIRE bootstrap step of compose.yaml; the
# `smtp` target is its SMTP server (Postfix from Debian, configured by
# deploy/smtp/postfix-conf.sh like the local one).
# The base images' defaults are the ones pinned in mesh/versions.toml (a
# test in crates/mesh checks that they agree).

ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-20251117-slim
ARG SPIRE_SERVER_IMAGE=ghcr.io/spiffe/spire-server:1.15.3

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# protox compiles the protos in Rust: no protoc needed.
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY proto proto
COPY crates crates
COPY mesh mesh
COPY migrations migrations
COPY observability observability
COPY services services
COPY tests tests
# The programs to keep are the generator's facts (MESH_BINARIES).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
 && eval "$(target/release/interlock-mesh env)" \
 && mkdir /out \
 && for b in $MESH_BINARIES; do cp "target/release/$b" /out/; done

FROM ${RUNTIME_IMAGE} AS runtime
ARG BINARY
RUN test -n "$BINARY" \
 && apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 interlock \
 && useradd --system --uid 10001 --gid interlock --no-create-home --shell /usr/sbin/nologin interlock
COPY --from=build /out/${BINARY} /usr/local/bin/${BINARY}
# interlock-mesh is the health probe (grpc.health.v1 over TCP).
COPY --from=build /out/interlock-mesh /usr/local/bin/interlock-mesh
COPY deploy/compose/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV BINARY=${BINARY}
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD []
# The compose target's service port (mesh/topology.toml); compose.yaml sets
# the same check per service.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["interlock-mesh", "health", "127.0.0.1:8000"]

FROM ${SPIRE_SERVER_IMAGE} AS spire-server
FROM ${RUNTIME_IMAGE} AS spire-init
COPY --from=spire-server /opt/spire/bin/spire-server /usr/local/bin/spire-server
ENTRYPOINT []

FROM ${RUNTIME_IMAGE} AS smtp
RUN apt-get update \
 && echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin interlock-mail
COPY deploy/smtp/postfix-conf.sh /usr/local/lib/interlock/postfix-conf.sh
COPY deploy/smtp/entrypoint.sh /usr/local/bin/smtp-entrypoint.sh
ENTRYPOINT ["/usr/local/bin/smtp-entrypoint.sh"]
