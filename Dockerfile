# syntax=docker/dockerfile:1
#
# Jarvis container image: a multi-stage build.
#   chef     - the Rust toolchain of rust-toolchain.toml plus cargo-chef
#   planner  - computes the dependency "recipe" from the Cargo manifests and Cargo.lock
#   builder  - builds the dependencies alone (a layer cached until Cargo.toml/Cargo.lock change),
#              then Jarvis itself with exactly the release build CI runs:
#              cargo build --release --locked -p jarvis
#   runtime  - distroless (glibc, libssl, CA certificates, no shell), non-root, just the binary
#
# Build: docker build -t jarvis .     Run: docker run -p 4000:4000 jarvis
# Logs are JSON lines on stdout; the HTTP port is 4000; `jarvis healthcheck` is the health check.

ARG RUST_VERSION=1.95.0
ARG CARGO_CHEF_VERSION=0.1.78

FROM rust:${RUST_VERSION}-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
COPY rust-toolchain.toml ./
# Dependencies only: this layer is reused for as long as the recipe (manifests and lock) is unchanged.
RUN cargo chef cook --release --locked -p jarvis --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p jarvis \
    && install -D -m 0755 target/release/jarvis /out/usr/local/bin/jarvis \
    && install -d -m 0755 /out/app/data /out/app/logs

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="jarvis" \
      org.opencontainers.image.description="Jarvis control plane for autonomous agents" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/usr/local/bin/jarvis /usr/local/bin/jarvis
# Writable data and log directories for the non-root user (uid 65532 in distroless "nonroot").
COPY --from=builder --chown=65532:65532 /out/app /app
WORKDIR /app
ENV JARVIS_ENV=production \
    JARVIS_PORT=4000 \
    JARVIS_DATA_DIR=/app/data \
    JARVIS_LOG_DIR=/app/logs \
    LOG_LEVEL=info
USER 65532:65532
EXPOSE 4000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/jarvis", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/jarvis"]
CMD ["serve"]
