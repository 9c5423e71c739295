# device-lookup: a release build in a slim, shell-less runtime.
#   docker build -t device-lookup .
# Bases: the official images by default, pinned. Where no registry can be
# reached, scripts/containers.sh passes local stand-ins through RUST_IMAGE
# and RUNTIME_IMAGE. BuildKit is needed (cache and secret mounts); the
# engine's built-in Dockerfile frontend has all this file uses.
# Stages: dependencies are compiled against stubs of the sources, so that
# layer is reused until Cargo.toml or Cargo.lock change; then the real build.
# Runtime: distroless cc (glibc and libgcc, nothing else: no shell), non-root,
# fit for a read-only root filesystem: it writes only to the results volume.

ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS deps
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# The registry is a cache mount: kept from build to build, never in a layer.
# A CA bundle given as the secret `cacert` is used for crates.io (the official
# image has its own; a stand-in may not), and never stored in the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export CARGO_HTTP_CAINFO=/run/secrets/cacert; fi \
 && mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/hot_paths.rs \
 && echo 'fn main() {}' > benches/stages.rs \
 && cargo build --release --locked --bin device-lookup --config 'profile.release.strip="symbols"' \
 && rm -rf src benches

FROM deps AS build
COPY src src
COPY benches benches
# The crates are compiled in the dependency layer; the registry mount is
# needed only if the build cache lost it meanwhile.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export CARGO_HTTP_CAINFO=/run/secrets/cacert; fi \
 && touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin device-lookup --config 'profile.release.strip="symbols"' \
 && mkdir -p /out/var/lib/device-lookup \
 && cp target/release/device-lookup /out/device-lookup

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/device-lookup /usr/local/bin/device-lookup
COPY --chmod=0444 config.toml /etc/device-lookup/config.toml
# The results volume's mount point, owned by the runtime user, so a fresh
# named volume takes that ownership.
COPY --from=build --chown=65532:65532 /out/var/lib/device-lookup /var/lib/device-lookup
ENV DEVICE_LOOKUP_CONFIG=/etc/device-lookup/config.toml \
    DEVICE_LOOKUP__OUTPUT__PATH=/var/lib/device-lookup/results.jsonl \
    DEVICE_LOOKUP__HTTP__LISTEN=0.0.0.0:9187 \
    DEVICE_LOOKUP__LOG__FORMAT=json
USER 65532:65532
VOLUME ["/var/lib/device-lookup"]
EXPOSE 9187
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/device-lookup", "healthcheck"]
# SIGTERM reaches the daemon directly (exec form, PID 1): it drains in-flight
# tasks for daemon.shutdown_timeout and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/device-lookup"]
CMD ["run"]
