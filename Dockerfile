# syntax=docker/dockerfile:1
#
# sidebus container image: a Rust build stage and a slim Debian runtime stage.
#
#   docker build -t sidebus .
#   docker run --rm -p 8642:8642 sidebus            # memory broker, no config
#   docker run --rm -p 8642:8642 -v "$PWD/sidebus.toml:/etc/sidebus/sidebus.toml:ro" \
#     -e SIDEBUS_CONFIG=/etc/sidebus/sidebus.toml sidebus
#
# Every config key can be overridden with SIDEBUS_<KEY> (nested keys joined by __); the image
# sets SIDEBUS_LISTEN so sidebus is reachable from outside its container.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# rdkafka-sys builds librdkafka with make and a C/C++ toolchain and links zlib; reqwest's
# native-tls links OpenSSL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# The registry and target caches survive between builds (BuildKit); the binary is copied out of
# the cached target directory in the same step. Debug line tables are stripped (76 MB -> 18 MB);
# symbols stay, so panics still name their functions.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --features otlp --bin sidebus \
 && install -D -m 0755 target/release/sidebus /out/sidebus \
 && strip --strip-debug /out/sidebus

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sidebus \
 && useradd --system --uid 10001 --gid sidebus --home-dir /var/lib/sidebus --no-create-home \
      --shell /usr/sbin/nologin sidebus \
 && install -d -o sidebus -g sidebus -m 0750 /var/lib/sidebus
COPY --from=build /out/sidebus /usr/local/bin/sidebus
# A numeric user, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /var/lib/sidebus
ENV SIDEBUS_LISTEN=0.0.0.0:8642 \
    SIDEBUS_STATE_DIR=/var/lib/sidebus
EXPOSE 8642
# No curl in the slim image: bash's /dev/tcp asks /healthz on the port SIDEBUS_LISTEN names.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${SIDEBUS_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/sidebus"]
