# Aura Orchestrator: the `aura` binary on Debian bookworm-slim.
#
#   docker build -t aura-orchestrator .
#   docker run --rm aura-orchestrator --help
#   docker run --rm -p 8080:8080 \
#       -e AURA_BOOTSTRAP_SERVERS=broker.example.com:9092 \
#       -e AURA_SCHEMA_REGISTRY_URL=http://registry.example.com:8081 \
#       -e AURA_INSTANCE_ID=aura-0 aura-orchestrator
#
# The default command runs the service with /etc/aura/aura.toml, a copy of deploy/aura.toml. That file
# is the compose stack's: it names the hosts `kafka` and `schema-registry`, which exist only inside
# docker-compose.yml's network. Anywhere else, point Aura at your own broker and registry, as above
# (an empty AURA_SCHEMA_REGISTRY_URL means the embedded schema catalog), or mount your own file over
# /etc/aura/aura.toml. Flags and AURA_* variables override the file (see `aura run --help`).
#
# Works with BuildKit and with the classic builder: no cache mounts, the dependency layer is cached
# by the Docker layer cache alone.

# Cargo.toml's rust-version (1.89) is what Cargo.lock needs: uuid 1.29.3 requires rustc 1.89.
ARG RUST_VERSION=1.91
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build

# A failing stage of a pipe fails the RUN.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# rdkafka builds librdkafka from source (rdkafka-sys runs librdkafka's own ./configure, no cmake with
# the current features: only zlib is enabled). cmake, libsasl2-dev and libcurl4-openssl-dev are here
# so that turning on rdkafka's `cmake-build`, `gssapi` or `curl` features needs no Dockerfile change.
# libssl-dev is for native-tls (the schema registry client), zlib1g-dev for librdkafka's compression.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        cmake \
        libcurl4-openssl-dev \
        libsasl2-dev \
        libssl-dev \
        pkg-config \
        zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# 1. Dependencies only: build them against placeholder sources, so this (slow: librdkafka) layer
#    is reused until Cargo.toml or Cargo.lock change. Cargo refuses a manifest whose [[bench]],
#    [[test]], [[example]] or [[bin]] target file is missing, so each declared target gets a
#    placeholder too. Those outside src/ stay: `--bin aura` never builds them, and they keep the
#    manifest loadable in step 2 without copying benches/ or tests/ into the image.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && : > src/lib.rs \
    && awk -F'"' ' \
        /^\[\[(bin|bench|test|example)\]\]/ { kind = $0; sub(/^\[\[/, "", kind); sub(/\]\].*/, "", kind); next } \
        /^\[/ { kind = "" } \
        kind != "" && /^[ \t]*name[ \t]*=/ { print (kind == "bin" ? "src/bin" : kind == "bench" ? "benches" : kind "s") "/" $2 ".rs" } \
        kind != "" && /^[ \t]*path[ \t]*=/ { print $2 } \
       ' Cargo.toml \
       | while read -r f; do [ -e "$f" ] || { mkdir -p "$(dirname "$f")" && echo 'fn main() {}' > "$f"; }; done \
    && cargo build --release --locked --bin aura \
    && rm -rf src

# 2. The crate itself. The binary embeds schemas/*.avsc and topologies/patterns.toml (include_str!).
#    The placeholder's artifacts are removed, so a source file older than them (COPY keeps mtimes)
#    can never leave the placeholder binary in place. The release profile keeps line tables
#    (debug = 1) for backtraces and profiles: they are compressed rather than stripped.
COPY src ./src
COPY schemas ./schemas
COPY topologies ./topologies
RUN rm -rf target/release/.fingerprint/aura-orchestrator-* \
        target/release/deps/aura-* target/release/deps/libaura-* \
        target/release/aura target/release/aura.d \
    && cargo build --release --locked --bin aura \
    && mkdir -p /out \
    && objcopy --compress-debug-sections=zlib target/release/aura /out/aura \
    && /out/aura --version

# ---------------------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

LABEL org.opencontainers.image.title="aura-orchestrator" \
      org.opencontainers.image.description="Kafka stream processor that turns TDA anomalies into durable, exactly-once agent orchestration" \
      org.opencontainers.image.licenses="Apache-2.0"

# libssl3: native-tls (schema registry over https); zlib1g: librdkafka; ca-certificates: TLS roots.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        libssl3 \
        zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 aura \
    && useradd --system --uid 10001 --gid aura --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin aura

COPY --from=build /out/aura /usr/local/bin/aura
COPY deploy/aura.toml /etc/aura/aura.toml

# Numeric, so runAsNonRoot-style checks can verify it without /etc/passwd.
USER 10001:10001
EXPOSE 8080

# Liveness via bash's /dev/tcp (bash is part of the slim image; no curl needed). It assumes the
# default http.listen port 8080; override the healthcheck if you change it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["aura"]
CMD ["run", "--config", "/etc/aura/aura.toml"]
