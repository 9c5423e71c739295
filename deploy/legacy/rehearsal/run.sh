#!/usr/bin/env bash
# The legacy stack rehearsed on a one-node swarm on this machine.
#
#   run.sh up      swarm, node labels, images, secrets, deploy; waits for every task healthy
#   run.sh drill   the checks and failover drills (drill.py), then ops.yml deployed and checked
#   run.sh down    removes the stacks, their secrets, volumes and /srv/legacy; leaves the swarm it made
#   run.sh         all three; non-zero when anything failed
#
# stack.yml is deployed as shipped, through swarm/deploy.sh, with two changes,
# both visible: images that cannot be had here come from stand-ins (through
# the stack's IMAGE_* variables; each stand-in's Dockerfile says what it
# replaces) and one-node.yml lowers the counts that spread tasks over hosts.
# Needs a running dockerd and the bases BOOKWORM and BULLSEYE (Debian images
# made by scripts/containers.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
legacy=$(cd "$here/.." && pwd)
export STACK=legacy
BOOKWORM=${BOOKWORM:-device-lookup-base/debian:bookworm}
BULLSEYE=${BULLSEYE:-device-lookup-base/debian:bullseye}
STATE=${REHEARSAL_STATE:-/tmp/legacy-rehearsal}
export IMAGE_APP=legacy-rehearsal/app:local IMAGE_NGINX=legacy-rehearsal/nginx:local \
    IMAGE_REDIS=legacy-rehearsal/redis:local IMAGE_MYSQL=legacy-rehearsal/mysql:local \
    IMAGE_PROXYSQL=legacy-rehearsal/proxysql:local IMAGE_NODE_EXPORTER=legacy-rehearsal/exporters:local \
    IMAGE_MYSQLD_EXPORTER=legacy-rehearsal/exporters:local IMAGE_REDIS_EXPORTER=legacy-rehearsal/exporters:local
SECRETS=(mysql_admin_password mysql_app_password mysql_monitor_password mysql_repl_password
    mysql_root_password proxysql_admin_password redis_password)
say() { echo "rehearsal: $*" >&2; }

images() {
    local started=$SECONDS
    "$here/build-app.sh" "$BULLSEYE" "$IMAGE_APP" >/dev/null
    docker build -q --build-arg "BASE=$BOOKWORM" -t "$IMAGE_NGINX" -f "$here/nginx.Dockerfile" "$legacy" >/dev/null
    docker build -q --build-arg "BASE=$BOOKWORM" -t "$IMAGE_REDIS" -f "$here/redis.Dockerfile" "$legacy" >/dev/null
    docker build -q --build-arg "BASE=$BOOKWORM" -t "$IMAGE_MYSQL" -f "$here/mariadb/Dockerfile" "$legacy" >/dev/null
    docker build -q --build-arg "BASE=$BOOKWORM" -t "$IMAGE_PROXYSQL" -f "$here/haproxy/Dockerfile" "$legacy" >/dev/null
    docker build -q --build-arg "BASE=$BOOKWORM" -t "$IMAGE_NODE_EXPORTER" -f "$here/exporters/Dockerfile" "$legacy" >/dev/null
    say "images built in $((SECONDS - started)) s"
}

swarm() {
    mkdir -p "$STATE"
    if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
        # The address pool the design uses (docs §4.1), clear of the hosts' networks.
        docker swarm init --advertise-addr 127.0.0.1 --default-addr-pool 10.251.0.0/16 \
            --default-addr-pool-mask-length 24 >/dev/null
        touch "$STATE/swarm-made-here"
        say "one-node swarm initialised"
    fi
    docker node update --label-add edge=true --label-add app=true --label-add sentinel=true \
        --label-add mysql_a=true --label-add mysql_b=true --label-add redis_a=true --label-add redis_b=true \
        "$(docker info --format '{{.Swarm.NodeID}}')" >/dev/null
}

secrets() {
    local s
    umask 077
    for s in "${SECRETS[@]}"; do
        docker secret inspect "$s" >/dev/null 2>&1 && continue
        openssl rand -hex 16 | tee "$STATE/$s" | docker secret create "$s" - >/dev/null
    done
    if ! docker secret inspect tls_cert >/dev/null 2>&1; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=legacy.rehearsal \
            -keyout "$STATE/tls_key" -out "$STATE/tls_cert" 2>/dev/null
        docker secret create tls_cert "$STATE/tls_cert" >/dev/null
        docker secret create tls_key "$STATE/tls_key" >/dev/null
    fi
}

converged() { # STACK: every service at its replica count, every running task healthy
    docker service ls --filter "label=com.docker.stack.namespace=$1" --format '{{.Replicas}}' \
        | awk -F'[/ ]' '$1 != $2 { bad = 1 } END { exit bad }' || return 1
    [ -z "$(docker ps --filter "label=com.docker.stack.namespace=$1" --filter health=starting -q)" ] || return 1
    [ -z "$(docker ps --filter "label=com.docker.stack.namespace=$1" --filter health=unhealthy -q)" ]
}

wait_converged() { # STACK SECONDS
    local deadline=$((SECONDS + $2))
    until converged "$1"; do
        if [ $SECONDS -ge $deadline ]; then
            docker service ls --filter "label=com.docker.stack.namespace=$1" >&2
            # shellcheck disable=SC2046 # one argument per service id
            docker service ps --no-trunc --format '{{.Name}} {{.CurrentState}} {{.Error}}' \
                $(docker service ls -q --filter "label=com.docker.stack.namespace=$1") 2>/dev/null | head -30 >&2
            say "FAILED: $1 did not converge in $2 s"
            return 1
        fi
        sleep 1
    done
    say "$1 converged: every service at its count, every task healthy"
    docker service ls --filter "label=com.docker.stack.namespace=$1" --format '  {{.Name}} {{.Replicas}} {{.Image}}' >&2
}

up() {
    local deadline
    swarm
    images
    secrets
    mkdir -p /srv/legacy/mysql-a /srv/legacy/mysql-b /srv/legacy/redis-a /srv/legacy/redis-b
    chown 999:999 /srv/legacy/*
    "$legacy/swarm/deploy.sh" "$STACK" "$here/one-node.yml"
    wait_converged "$STACK" 240
}

# ops.yml, with a first backup at start; fails on any key Swarm ignores.
ops() {
    local out
    mkdir -p /srv/legacy/backup && chown 999:999 /srv/legacy/backup
    out=$(cd "$legacy" && BACKUP_AT_START=1 docker stack deploy -c ops.yml --detach=true "$STACK-ops" 2>&1) \
        || { echo "$out" >&2; return 1; }
    if grep -qi ignoring <<<"$out"; then echo "$out" >&2; say "FAILED: Swarm ignored part of ops.yml"; return 1; fi
    wait_converged "$STACK-ops" 180
}

drill() {
    ADMIN_PASSWORD_FILE="$STATE/mysql_admin_password" TOOLS_IMAGE="$IMAGE_MYSQL" DB_FLAVOR=mariadb \
        python3 "$here/drill.py" --stack "$STACK" --failover "$legacy/swarm/failover.sh"
    ops
    python3 "$here/drill.py" --stack "$STACK" --ops
}

down() {
    local deadline
    docker stack rm "$STACK-ops" >/dev/null 2>&1 || true
    docker stack rm "$STACK" >/dev/null 2>&1 || true
    deadline=$((SECONDS + 120))
    while [ -n "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] \
        || [ -n "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK-ops")" ] \
        || [ -n "$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK")" ]; do
        [ $SECONDS -lt $deadline ] || break
        sleep 1
    done
    docker volume rm "${STACK}_sentinel-data" >/dev/null 2>&1 || true
    docker secret rm "${SECRETS[@]}" tls_cert tls_key >/dev/null 2>&1 || true
    rm -rf /srv/legacy
    if [ -e "$STATE/swarm-made-here" ]; then docker swarm leave --force >/dev/null 2>&1 || true; fi
    rm -rf "$STATE"
    if [ -z "${KEEP_IMAGES:-}" ]; then
        docker image rm -f "$IMAGE_APP" "$IMAGE_NGINX" "$IMAGE_REDIS" "$IMAGE_MYSQL" "$IMAGE_PROXYSQL" \
            "$IMAGE_NODE_EXPORTER" >/dev/null 2>&1 || true
        docker builder prune -f >/dev/null 2>&1 || true  # the app's BuildKit cache
    fi
}

case "${1:-all}" in
    up) up ;;
    drill) drill ;;
    down) down ;;
    all)
        status=0
        up || status=$?
        [ $status -ne 0 ] || drill || status=$?
        [ -n "${KEEP_PROJECT:-}" ] || down
        exit $status
        ;;
    *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
