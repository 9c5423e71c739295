#!/usr/bin/env bash
# Promotes the standby MySQL to writer. Run by a person, on a manager, after
# deciding the writer is gone (two nodes have no quorum: see §2.3).
#   failover.sh mysql-b          # make mysql-b the writer
# ProxySQL moves writes by itself once it sees read_only change.
set -euo pipefail
NEW=${1:?usage: failover.sh mysql-a|mysql-b}
case "$NEW" in mysql-a) OLD=mysql-b ;; mysql-b) OLD=mysql-a ;; *) echo "unknown node $NEW" >&2; exit 2 ;; esac
STACK=${STACK:-legacy}
sql() { # sql NODE STATEMENT: runs inside that node's container
    local node=$1; shift
    local id
    id=$(docker ps -q -f "label=com.docker.swarm.service.name=${STACK}_$node" | head -1)
    [ -n "$id" ] || return 1
    docker exec -i "$id" mysql --defaults-extra-file=/run/secrets/mysql_admin_cnf -N -e "$*"
}
echo "1/4 fencing $OLD"
if sql "$OLD" "SET GLOBAL super_read_only = ON" 2>/dev/null; then
    echo "    $OLD answered and is now read-only"
else
    echo "    $OLD does not answer; scaling it to 0 so it cannot come back writable"
    docker service scale "${STACK}_$OLD=0"
fi
echo "2/4 waiting for $NEW to apply everything it received"
RECEIVED=$(sql "$NEW" "SELECT RECEIVED_TRANSACTION_SET FROM performance_schema.replication_connection_status" | tr -d '\n')
[ "$(sql "$NEW" "SELECT WAIT_FOR_EXECUTED_GTID_SET('$RECEIVED', 120)")" = 0 ] || { echo "not caught up in 120 s" >&2; exit 1; }
echo "3/4 opening $NEW for writes"
sql "$NEW" "STOP REPLICA; SET GLOBAL super_read_only = OFF; SET GLOBAL read_only = OFF"
echo "4/4 ProxySQL's view (writer hostgroup 10):"
sleep 3
docker exec "$(docker ps -q -f "label=com.docker.swarm.service.name=${STACK}_proxysql" | head -1)" \
    mysql -h127.0.0.1 -P6032 -uadmin -p"$(cat /run/secrets/proxysql_admin_password 2>/dev/null)" \
    -e "SELECT hostgroup_id, hostname, status FROM runtime_mysql_servers" || true
echo "done: $NEW is the writer. Repair $OLD, then make it a replica of $NEW."
