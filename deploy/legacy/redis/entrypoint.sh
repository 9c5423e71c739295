#!/bin/sh
# redis | sentinel | health. The password comes from the Swarm secret
# redis_password (one line); Sentinel and Redis use the same one.
#
# A server never trusts a fixed role from the stack file: after a failover
# the live primary may be either one. It asks the Sentinels which server is
# the primary and starts as that or as its replica. Only a server with an
# empty data directory, at the first bootstrap, takes REDIS_BOOTSTRAP_PRIMARY
# from the stack; a server with data and no Sentinel to ask refuses to start
# (Swarm retries) rather than guess and resync the live primary from a stale one.
set -eu
PASS=$(tr -d '\n' </run/secrets/redis_password)
export REDISCLI_AUTH="$PASS"
NAME=${REDIS_SERVICE:-legacy}
BOOTSTRAP=${REDIS_BOOTSTRAP_PRIMARY:-redis-a}
log() { echo "legacy-entrypoint: $*" >&2; }

# The primary's name as any Sentinel knows it, or nothing.
ask_sentinels() {
    for ip in $(getent ahostsv4 "${SENTINELS:-tasks.sentinel}" 2>/dev/null | awk '{print $1}' | sort -u); do
        out=$(redis-cli --no-auth-warning -h "$ip" -p 26379 SENTINEL get-master-addr-by-name "$NAME" 2>/dev/null | head -n1)
        [ -z "$out" ] || { echo "$out"; return 0; }
    done
}

# Retries for up to $1 seconds: Sentinels may be starting too.
primary_from_sentinels() {
    deadline=$(( $(date +%s) + $1 ))
    while :; do
        p=$(ask_sentinels)
        [ -z "$p" ] || { echo "$p"; return 0; }
        [ "$(date +%s)" -lt "$deadline" ] || return 0
        sleep 1
    done
}

has_data() { [ -e /data/dump.rdb ] || [ -e /data/appendonlydir ]; }

case "${1:-redis}" in
redis)
    self=${REDIS_ANNOUNCE:?REDIS_ANNOUNCE: this server as the others reach it}
    primary=$(primary_from_sentinels 20)
    if [ -z "$primary" ]; then
        if has_data; then
            log "no Sentinel knows the primary and /data holds data: not guessing a role"
            exit 1
        fi
        primary=$BOOTSTRAP
        log "first bootstrap: primary is $primary (REDIS_BOOTSTRAP_PRIMARY)"
    fi
    set -- redis-server /etc/redis/redis.conf --requirepass "$PASS" --masterauth "$PASS" \
        --replica-announce-ip "$self"
    if [ "$primary" = "$self" ]; then
        log "starting as the primary"
    else
        log "starting as a replica of $primary"
        set -- "$@" --replicaof "$primary" 6379
    fi
    exec "$@"
    ;;
sentinel)
    # Sentinel rewrites its file as it learns (the primary, replicas, peers);
    # the file lives on its volume, one per task slot, so a restart keeps it.
    conf=/data/sentinel-${TASK_SLOT:-1}.conf
    if [ ! -s "$conf" ]; then
        primary=$(primary_from_sentinels 5)
        [ -n "$primary" ] || primary=$BOOTSTRAP
        log "new Sentinel: monitoring $primary"
        umask 077
        sed "s/@PRIMARY@/$primary/" /etc/redis/sentinel.conf >"$conf"
        printf 'requirepass "%s"\nsentinel auth-pass %s "%s"\nsentinel sentinel-pass "%s"\n' \
            "$PASS" "$NAME" "$PASS" "$PASS" >>"$conf"
    fi
    exec redis-sentinel "$conf"
    ;;
health)
    # Shallow: this process answers. Which process it is does not matter.
    out=$(redis-cli --no-auth-warning -p 26379 ping 2>/dev/null || redis-cli --no-auth-warning -p 6379 ping 2>/dev/null || true)
    [ "$out" = PONG ]
    ;;
*)
    exec "$@"
    ;;
esac
