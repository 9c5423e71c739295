#!/usr/bin/env bash
# Every container file of the project, built and run by a real engine.
#
#   bash scripts/containers.sh            everything below, in order; non-zero on any failure
#   bash scripts/containers.sh engine     install Docker, Compose v2 and buildx if missing; start dockerd
#   bash scripts/containers.sh bases      the base images no registry here serves, built locally
#   bash scripts/containers.sh image      the daemon's image from ./Dockerfile, tagged device-lookup:local
#   bash scripts/containers.sh demo       the compose demo (stand-ins for Redis and ClickHouse) and its check
#   bash scripts/containers.sh legacy     the legacy design's stack on a one-node swarm, with its drills
#                                         (deploy/legacy/rehearsal/run.sh)
#   bash scripts/containers.sh down       remove the demo (and its images unless KEEP_IMAGES=1)
#
# With no engine to be had (no root, no Docker) the default run says so in
# one line and exits 0, unless CI=true, where that is a failure. It stops
# dockerd again if it started it. KEEP_IMAGES=1 keeps the images it built;
# KEEP_PROJECT=1 leaves the demo running (then `down` removes it).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=device-lookup:local
BASE_IMAGE=device-lookup-base/debian:bookworm
BULLSEYE_IMAGE=device-lookup-base/debian:bullseye
RUST_STANDIN=device-lookup-base/rust:1.95-bookworm
RUNTIME_STANDIN=device-lookup-base/distroless-cc:bookworm
REDIS_STANDIN=device-lookup-standin/redis:bookworm
CLICKHOUSE_STANDIN=device-lookup-standin/clickhouse:bookworm
PROJECT=${COMPOSE_PROJECT_NAME:-device-lookup-ci}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
compose() { docker compose -p "$PROJECT" -f docker-compose.yml -f docker-compose.ci.yml "$@"; }
say() { echo "containers: $*" >&2; }

# The Debian mirror apt uses here (deb822 or one-line sources).
mirror() {
    local m
    m=$(grep -h -m1 '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -n1 || true)
    [ -n "$m" ] || m=$(grep -h -m1 '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1 || true)
    echo "${m:-http://deb.debian.org/debian}"
}

# --- engine -----------------------------------------------------------------

STARTED_DOCKERD=""
stop_dockerd() {
    [ -n "$STARTED_DOCKERD" ] || return 0
    kill "$STARTED_DOCKERD" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$STARTED_DOCKERD" 2>/dev/null || return 0; sleep 0.1; done
}
trap stop_dockerd EXIT

# Compose v2 and buildx are not in Debian 12: Debian 13's packages, fetched
# with a source list of their own and unpacked; only the plugin binaries are
# used (they are static Go programs).
plugins_from_trixie() {
    local dir opts deb
    dir=$(mktemp -d)
    mkdir -p "$dir/lists/partial" "$dir/archives/partial" "$dir/x"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(mirror) trixie main" >"$dir/sources.list"
    opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache::Archives=$dir/archives")
    apt-get -qq "${opts[@]}" update
    (cd "$dir" && apt-get -qq "${opts[@]}" download docker-compose docker-buildx 2>/dev/null)
    for deb in "$dir"/*.deb; do dpkg-deb -x "$deb" "$dir/x"; done
    mkdir -p /usr/libexec/docker/cli-plugins
    install -m 0755 "$dir"/x/usr/libexec/docker/cli-plugins/docker-compose \
        "$dir"/x/usr/libexec/docker/cli-plugins/docker-buildx /usr/libexec/docker/cli-plugins/
    rm -rf "$dir"
}

engine() {
    [ "$(id -u)" -eq 0 ] || { say "needs root to install and start Docker"; return 1; }
    if ! command -v dockerd >/dev/null && [ ! -x /usr/sbin/dockerd ]; then
        say "installing docker.io"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
    fi
    if ! docker compose version >/dev/null 2>&1 || ! docker buildx version >/dev/null 2>&1; then
        say "installing the Compose v2 and buildx plugins (Debian 13's packages)"
        plugins_from_trixie
    fi
    if ! docker info >/dev/null 2>&1; then
        say "starting dockerd"
        mkdir -p /var/log
        "$(command -v dockerd || echo /usr/sbin/dockerd)" >/var/log/device-lookup-dockerd.log 2>&1 &
        STARTED_DOCKERD=$!
        for _ in $(seq 300); do docker info >/dev/null 2>&1 && break; sleep 0.1; done
        docker info >/dev/null 2>&1 || { say "dockerd did not start (see /var/log/device-lookup-dockerd.log)"; return 1; }
    fi
    say "engine: $(docker version --format 'client {{.Client.Version}}, dockerd {{.Server.Version}}'), $(docker compose version --short 2>/dev/null | sed 's/^/compose /')"
}

# --- base images ------------------------------------------------------------

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# A Debian root (minbase) from the mirror, made once per run: bookworm by
# default; bullseye for the legacy rehearsal (Debian 11 has python2.7).
ROOTFS=""
rootfs() {
    [ -z "$ROOTFS" ] || return 0
    ROOTFS=$(debootstrap_root bookworm)
}
debootstrap_root() {
    local dir
    command -v debootstrap >/dev/null || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    }
    dir=$(mktemp -d "/tmp/device-lookup-rootfs-$1.XXXXXX")
    say "debootstrap $1 (minbase) from $(mirror)"
    debootstrap --variant=minbase "$1" "$dir" "$(mirror)" >/dev/null
    echo "$dir"
}

# The runtime stand-in for gcr.io/distroless/cc-debian12:nonroot: glibc and
# libgcc from that root, a nonroot user (65532) and nothing else: no shell,
# no package manager.
runtime_standin() {
    rootfs
    local rt lib=lib/x86_64-linux-gnu f
    rt=$(mktemp -d)
    mkdir -p "$rt/$lib" "$rt/lib64" "$rt/etc" "$rt/tmp" "$rt/home/nonroot"
    for f in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libgcc_s.so.1; do
        cp -L "$ROOTFS/usr/$lib/$f" "$rt/$lib/$f"
    done
    ln -s "../$lib/ld-linux-x86-64.so.2" "$rt/lib64/ld-linux-x86-64.so.2"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rt/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$rt/etc/group"
    chmod 1777 "$rt/tmp"
    chown 65532:65532 "$rt/home/nonroot"
    tar -C "$rt" -c . | docker import --change 'USER 65532:65532' - "$RUNTIME_STANDIN" >/dev/null
    rm -rf "$rt"
}

# The build stand-in for rust:1.95-slim-bookworm: that root with gcc and
# libc6-dev, and this machine's Rust toolchain (no other can be fetched), laid
# out as the official image lays it out (CARGO_HOME=/usr/local/cargo).
rust_standin() {
    local ctx sysroot
    ctx=$(mktemp -d)
    sysroot=$(rustc --print sysroot)
    mkdir -p "$ctx/rust"
    cp -a "$sysroot/bin" "$sysroot/lib" "$ctx/rust/"
    [ -d "$sysroot/libexec" ] && cp -a "$sysroot/libexec" "$ctx/rust/"
    cat >"$ctx/Dockerfile" <<EOF
FROM $BASE_IMAGE
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY rust /usr/local/rust
ENV CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
    docker build -q -t "$RUST_STANDIN" "$ctx" >/dev/null
    rm -rf "$ctx"
}

bases() {
    if ! have_image "$BASE_IMAGE"; then
        rootfs
        tar -C "$ROOTFS" -c . | docker import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
        say "built $BASE_IMAGE"
    fi
    have_image "$RUNTIME_STANDIN" || { runtime_standin; say "built $RUNTIME_STANDIN"; }
    have_image "$RUST_STANDIN" || { rust_standin; say "built $RUST_STANDIN"; }
    have_image "$REDIS_STANDIN" || {
        docker build -q --build-arg "BASE=$BASE_IMAGE" -t "$REDIS_STANDIN" deploy/standins/redis >/dev/null
        say "built $REDIS_STANDIN"
    }
    have_image "$CLICKHOUSE_STANDIN" || {
        docker build -q --build-arg "BASE=$BASE_IMAGE" -t "$CLICKHOUSE_STANDIN" deploy/standins/clickhouse >/dev/null
        say "built $CLICKHOUSE_STANDIN"
    }
    [ -z "$ROOTFS" ] || rm -rf "$ROOTFS"
}

# --- the legacy design's rehearsal -------------------------------------------

legacy() {
    local root
    if ! have_image "$BULLSEYE_IMAGE"; then
        root=$(debootstrap_root bullseye)
        tar -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$BULLSEYE_IMAGE" >/dev/null
        rm -rf "$root"
        say "built $BULLSEYE_IMAGE"
    fi
    BOOKWORM=$BASE_IMAGE BULLSEYE=$BULLSEYE_IMAGE bash deploy/legacy/rehearsal/run.sh
}

# --- the daemon's image -----------------------------------------------------

image() {
    local started=$SECONDS
    # The host's CA bundle reaches the build as a secret (crates.io over
    # HTTPS), never a layer of the image.
    DOCKER_BUILDKIT=1 docker build \
        --build-arg "RUST_IMAGE=$RUST_STANDIN" --build-arg "RUNTIME_IMAGE=$RUNTIME_STANDIN" \
        --secret "id=cacert,src=$CA_BUNDLE" -t "$IMAGE" .
    say "built $IMAGE in $((SECONDS - started)) s: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1 / 1e6}')"
}

# --- the compose demo -------------------------------------------------------

demo() {
    python3 scripts/compose_check.py --project "$PROJECT"
}

down() {
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    if [ -z "${KEEP_IMAGES:-}" ]; then
        docker image rm -f "$IMAGE" "$REDIS_STANDIN" "$CLICKHOUSE_STANDIN" \
            "$RUST_STANDIN" "$RUNTIME_STANDIN" "$BASE_IMAGE" "$BULLSEYE_IMAGE" >/dev/null 2>&1 || true
        # BuildKit keeps its cache after the images go (the toolchain context
        # alone is 600 MB): every fresh run would leave gigabytes behind.
        docker builder prune -f >/dev/null 2>&1 || true
    fi
}

all() {
    if ! engine; then
        if [ "${CI:-}" = true ]; then say "FAILED: no container engine"; exit 1; fi
        say "no container engine can start here: the container checks are skipped"
        exit 0
    fi
    bases
    image
    status=0
    demo || status=$?
    if [ -z "${KEEP_PROJECT:-}" ]; then compose down -v --remove-orphans >/dev/null 2>&1 || true; fi
    legacy || status=$?
    [ -n "${KEEP_PROJECT:-}" ] || down
    [ $status -eq 0 ] && say "all container checks passed" || say "FAILED"
    return $status
}

case "${1:-all}" in
    engine) engine ;;
    bases) engine && bases ;;
    image) engine && bases && image ;;
    demo) engine && demo ;;
    legacy) engine && bases && legacy ;;
    down) engine && down ;;
    all) all ;;
    *) echo "usage: $0 [engine|bases|image|demo|legacy|down|all]" >&2; exit 2 ;;
esac
