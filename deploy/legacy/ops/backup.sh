#!/bin/sh
# legacy-backup mysql|redis: a backup of the pair's read-only member (the
# standby; whichever node that is after failovers) every day at BACKUP_AT
# (UTC, HH:MM), and once at start when BACKUP_AT_START=1. Keeps BACKUP_KEEP
# files; BACKUP_SHIP, if set, is a command run with the new file's path
# (the off-host copy). A Swarm config, so the official images run it as is.
set -eu
kind=${1:?mysql or redis}
dir=${BACKUP_DIR:-/backup}
say() { echo "legacy-backup $kind: $*" >&2; }

# The read-only member of the pair, else the first that answers.
source_node() {
    first=""
    for n in ${BACKUP_SOURCES:?}; do
        case $kind in
        mysql) ro=$(MYSQL_PWD=$(cat /run/secrets/mysql_admin_password) \
                   mysql -h "$n" -u admin --connect-timeout=3 -N -B -e 'SELECT @@GLOBAL.read_only' 2>/dev/null) || continue ;;
        redis) ro=$(REDISCLI_AUTH=$(cat /run/secrets/redis_password) \
                   redis-cli --no-auth-warning -h "$n" INFO replication 2>/dev/null | grep -c '^role:slave') || true
               [ -n "$ro" ] || continue ;;
        esac
        [ -n "$first" ] || first=$n
        [ "$ro" = 1 ] && { echo "$n"; return; }
    done
    echo "$first"
}

run() {
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    node=$(source_node)
    [ -n "$node" ] || { say "no member of the pair answers"; return 1; }
    case $kind in
    mysql)
        out=$dir/mysql-$stamp.sql.gz
        # --single-transaction: a consistent snapshot without locking InnoDB;
        # with GTIDs the dump carries its GTID_PURGED position.
        MYSQL_PWD=$(cat /run/secrets/mysql_admin_password) mysqldump -h "$node" -u admin \
            --single-transaction --routines --triggers --events --all-databases | gzip >"$out.part"
        ;;
    redis)
        out=$dir/redis-$stamp.rdb
        REDISCLI_AUTH=$(cat /run/secrets/redis_password) redis-cli --no-auth-warning -h "$node" --rdb "$out.part" >/dev/null
        ;;
    esac
    mv "$out.part" "$out"
    say "wrote $out from $node ($(wc -c <"$out") bytes)"
    # shellcheck disable=SC2012 # the names are ours: no spaces, no newlines
    ls -1t "$dir/$kind-"* | tail -n +$((${BACKUP_KEEP:-7} + 1)) | xargs -r rm -f
    [ -z "${BACKUP_SHIP:-}" ] || sh -c "$BACKUP_SHIP" ship "$out"
}

last=""
if [ "${BACKUP_AT_START:-0}" = 1 ]; then run || say "FAILED"; fi
while :; do
    if [ "$(date -u +%H:%M)" = "${BACKUP_AT:-02:30}" ] && [ "$last" != "$(date -u +%F)" ]; then
        last=$(date -u +%F)
        run || say "FAILED"
    fi
    sleep 20
done
