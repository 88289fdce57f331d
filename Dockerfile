# syntax=docker/dockerfile:1
# One parameterised image per Interlock program:
#   docker build --build-arg SERVICE=auth --target runtime -t interlock-auth .
# SERVICE is one of auth, roles, users, notifications, sender, fcm-local.
# The `spire-init` target is the SPIRE bootstrap step of compose.yaml.

ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-20251117-slim

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
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
 && mkdir /out \
 && cp target/release/interlock-auth target/release/interlock-roles target/release/interlock-users \
       target/release/interlock-notifications target/release/interlock-sender \
       target/release/interlock-fcm-local target/release/interlock-mesh /out/

FROM ${RUNTIME_IMAGE} AS runtime
ARG SERVICE
RUN test -n "$SERVICE" \
 && apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 interlock \
 && useradd --system --uid 10001 --gid interlock --no-create-home --shell /usr/sbin/nologin interlock
COPY --from=build /out/interlock-${SERVICE} /usr/local/bin/interlock-${SERVICE}
# interlock-mesh is the health probe (grpc.health.v1 over TCP).
COPY --from=build /out/interlock-mesh /usr/local/bin/interlock-mesh
COPY deploy/compose/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV SERVICE=${SERVICE}
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD []
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["interlock-mesh", "health", "127.0.0.1:8000"]

FROM ghcr.io/spiffe/spire-server:1.15.3 AS spire-server
FROM ${RUNTIME_IMAGE} AS spire-init
COPY --from=spire-server /opt/spire/bin/spire-server /usr/local/bin/spire-server
ENTRYPOINT []
