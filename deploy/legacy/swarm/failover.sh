#!/usr/bin/env bash
# The MySQL pair's writer, moved by a person (two nodes have no quorum to
# decide it themselves: docs §2.3). Run on a Swarm manager: every step goes
# through the Swarm API or a tools container on the stack's data network,
# never `docker ps/exec` (which see only this host's containers).
#
#   failover.sh status
#   failover.sh promote NODE [--force]   NODE (mysql-a|mysql-b) becomes the only writer
#   failover.sh rejoin NODE              NODE, back and read-only, replicates again; its fence lifts
#
# promote: (1) fence the other node in every proxy task (a rolling update of
# FENCED_SERVERS that must converge: a proxy that cannot be reached could
# still route writes to it); (2) make it read-only if it answers, else scale
# its service to 0; (3) wait until NODE has applied everything it has
# (received, or the other's executed set); (4) stop NODE's replication from
# the other and open NODE for writes; (5) a planned switchover (the other
# answered) ends with rejoin of the other. --force skips the fence's
# convergence and the catch-up wait: writes may be lost or split.
#
# Environment: STACK (legacy), DB_FLAVOR (mysql | mariadb, the rehearsal's
# stand-in), TOOLS_IMAGE (any image with the mysql client; the mysql image),
# ADMIN_PASSWORD_FILE (the admin account's password, from the vault),
# CATCHUP_TIMEOUT (seconds, 120).
set -euo pipefail
STACK=${STACK:-legacy}
FLAVOR=${DB_FLAVOR:-mysql}
TOOLS_IMAGE=${TOOLS_IMAGE:-registry.internal/legacy/mysql:8.0.40-1}
PWFILE=${ADMIN_PASSWORD_FILE:-/root/.legacy/mysql_admin_password}
WAIT=${CATCHUP_TIMEOUT:-120}
say() { echo "failover: $*" >&2; }
die() { say "STOPPED: $*"; exit 1; }
peer_of() { case $1 in mysql-a) echo mysql-b ;; mysql-b) echo mysql-a ;; *) die "unknown node '$1'" ;; esac; }

# --- SQL through a tools container on the data network -----------------------

tools=""
start_tools() {
    [ -r "$PWFILE" ] || die "no admin password file at $PWFILE"
    tools=legacy-dbtools-$$
    docker run -d --rm --no-healthcheck --name "$tools" --user 0 --network "${STACK}_data" --entrypoint sleep \
        -v "$(readlink -f "$PWFILE"):/run/admin_password:ro" "$TOOLS_IMAGE" 3600 >/dev/null
    trap 'docker rm -f "$tools" >/dev/null 2>&1 || true' EXIT
}
# as_admin NODE STATEMENTS [mysql options]: the client as admin, rows
# tab-separated (-B); fails when NODE does not answer in 3 s.
as_admin() {
    docker exec -i "$tools" sh -c \
        'MYSQL_PWD=$(cat /run/admin_password) exec mysql -h "$0" -u admin --connect-timeout=3 -B "$@"' \
        "$1" "${@:3}" -e "$2"
}
# sql NODE STATEMENTS: the rows, without the header line.
sql() { as_admin "$1" "$2" -N; }
# column NODE STATEMENT NAME: the value of column NAME in the statement's first row.
column() {
    as_admin "$1" "$2" |
        awk -F'\t' -v name="$3" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next }
                                  NR == 2 && c { print $c }'
}
answers() { sql "$1" "SELECT 1" >/dev/null 2>&1; }

# --- what differs between MySQL 8 and the MariaDB stand-in --------------------

fence_sql() { [ "$FLAVOR" = mysql ] && echo "SET GLOBAL super_read_only = ON" || echo "SET GLOBAL read_only = ON"; }
open_sql() {
    [ "$FLAVOR" = mysql ] && echo "STOP REPLICA; SET GLOBAL super_read_only = OFF; SET GLOBAL read_only = OFF" \
        || echo "STOP REPLICA; SET GLOBAL read_only = OFF"
}
# The transactions NODE has executed (MySQL: a GTID set; MariaDB: a position per domain).
executed() {
    [ "$FLAVOR" = mysql ] && sql "$1" "SELECT @@GLOBAL.gtid_executed" | tr -d '\n' \
        || sql "$1" "SELECT @@GLOBAL.gtid_current_pos"
}
# The transactions NODE has received from its source, applied or not.
received() {
    if [ "$FLAVOR" = mysql ]; then
        sql "$1" "SELECT RECEIVED_TRANSACTION_SET FROM performance_schema.replication_connection_status" | tr -d '\n'
    else
        column "$1" "SHOW SLAVE STATUS" Gtid_IO_Pos
    fi
}
# contains NODE SET: NODE has executed everything in SET.
contains() {
    if [ "$FLAVOR" = mysql ]; then
        [ "$(sql "$1" "SELECT GTID_SUBSET('$2', @@GLOBAL.gtid_executed)")" = 1 ]
    else
        # domain-server-seq lists: every domain of SET at an equal or higher seq on NODE.
        awk -v want="$2" -v have="$(executed "$1")" 'BEGIN {
            n = split(have, h, ","); for (i = 1; i <= n; i++) { split(h[i], p, "-"); seq[p[1]] = p[3] }
            n = split(want, w, ","); for (i = 1; i <= n; i++) { if (w[i] == "") continue
                split(w[i], p, "-"); if (!(p[1] in seq) || seq[p[1]] + 0 < p[3] + 0) exit 1 } }'
    fi
}
wait_contains() { # NODE SET SECONDS
    local deadline=$((SECONDS + $3))
    until contains "$1" "$2"; do
        [ $SECONDS -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

# --- the proxies' fence, through the Swarm API --------------------------------

fenced_now() {
    docker service inspect "${STACK}_proxysql" \
        --format '{{range .Spec.TaskTemplate.ContainerSpec.Env}}{{println .}}{{end}}' | sed -n 's/^FENCED_SERVERS=//p'
}
set_fence() { # VALUE [--force]: every proxy task restarts with it; waits for convergence
    [ "$(fenced_now)" = "$1" ] && return 0
    if ! timeout 180 docker service update --quiet --detach=false --env-add "FENCED_SERVERS=$1" "${STACK}_proxysql" >/dev/null; then
        [ "${2:-}" = --force ] || die "the proxies did not all take FENCED_SERVERS=$1 (a proxy host unreachable?); --force to go on"
        say "proxies not converged; going on (--force)"
    fi
}

# --- commands -----------------------------------------------------------------

status() {
    local n
    start_tools
    for n in mysql-a mysql-b; do
        if answers "$n"; then
            echo "$n: read_only=$(sql "$n" "SELECT @@GLOBAL.read_only") executed=$(executed "$n")"
        else
            echo "$n: does not answer"
        fi
    done
    echo "proxies: FENCED_SERVERS=$(fenced_now)"
}

promote() {
    local new=$1 old force=${2:-} old_alive="" target
    old=$(peer_of "$new")
    start_tools
    answers "$new" || die "$new does not answer"
    say "1/5 fencing $old in every proxy"
    set_fence "$old" "$force"
    say "2/5 making $old read-only"
    if answers "$old" && sql "$old" "$(fence_sql)"; then
        old_alive=1
        target=$(executed "$old")
        say "    $old answered and is read-only"
    else
        say "    $old does not answer: scaling it to 0 (it stays down until 'rejoin $old')"
        docker service scale --detach=false "${STACK}_$old=0" >/dev/null
        target=$(received "$new")
    fi
    say "3/5 waiting up to $WAIT s for $new to apply ${target:-nothing}"
    if [ -n "$target" ] && ! wait_contains "$new" "$target" "$WAIT"; then
        [ "$force" = --force ] || die "$new has not applied what it received; --force to open it anyway (those transactions are lost)"
    fi
    say "4/5 opening $new for writes"
    sql "$new" "$(open_sql)"
    [ "$(sql "$new" "SELECT @@GLOBAL.read_only")" = 0 ] || die "$new is still read-only"
    say "5/5 $new is the writer"
    if [ -n "$old_alive" ]; then
        say "planned switchover: $old rejoins as a replica"
        rejoin_started "$old"
    else
        say "repair $old, then: failover.sh rejoin $old"
    fi
}

rejoin() {
    start_tools
    rejoin_started "$1"
}

rejoin_started() {
    local node=$1 writer deadline
    writer=$(peer_of "$node")
    [ "$(sql "$writer" "SELECT @@GLOBAL.read_only")" = 0 ] || die "$writer is not the writer"
    if [ "$(docker service inspect "${STACK}_$node" --format '{{.Spec.Mode.Replicated.Replicas}}')" = 0 ]; then
        say "starting $node (it starts read-only)"
        docker service scale --detach=false "${STACK}_$node=1" >/dev/null
    fi
    deadline=$((SECONDS + WAIT))
    until answers "$node"; do [ $SECONDS -lt $deadline ] || die "$node does not answer"; sleep 1; done
    [ "$(sql "$node" "SELECT @@GLOBAL.read_only")" = 1 ] || die "$node is writable: two writers? (split-brain runbook)"
    contains "$writer" "$(executed "$node")" \
        || die "$node has transactions $writer lacks (errant): reseed it from $writer (docs, split-brain runbook)"
    say "$node replicates from $writer"
    # START on a running replica only warns; the catch-up below is the proof.
    sql "$node" "START REPLICA" 2>/dev/null || true
    wait_contains "$node" "$(executed "$writer")" "$WAIT" || die "$node did not catch up in $WAIT s"
    say "$writer replicates from $node again (master-master; $node is read-only)"
    sql "$writer" "START REPLICA" 2>/dev/null || true
    say "lifting the proxies' fence"
    set_fence ""
    say "$node is a caught-up, read-only replica of $writer"
}

case "${1:-}" in
    status) status ;;
    promote) promote "${2:?promote NODE}" "${3:-}" ;;
    rejoin) peer_of "${2:?rejoin NODE}" >/dev/null; rejoin "$2" ;;
    *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
