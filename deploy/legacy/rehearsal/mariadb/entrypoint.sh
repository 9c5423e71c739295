#!/bin/bash
# REHEARSAL STAND-IN for the mysql image's entrypoint plus mysql/init-users.sh:
# the same accounts and replication from LEGACY_PEER on an empty datadir, in
# MariaDB's syntax, then the server with the stack's arguments.
#   entrypoint.sh mysqld --server-id=N [mysqld options...]
set -euo pipefail
[ "${1:-}" = mysqld ] && shift
secret() { tr -d '\n' <"/run/secrets/$1"; }
server_id=$(printf '%s\n' "$@" | sed -n 's/^--server-id=//p')
PEER=${LEGACY_PEER:?LEGACY_PEER: the other node of the pair}
# The marker is written last: a first start that failed half-way starts over.
if [ ! -e /var/lib/mysql/.legacy-initialised ]; then
    find /var/lib/mysql -mindepth 1 -delete
    mariadb-install-db --datadir=/var/lib/mysql --skip-test-db --auth-root-authentication-method=normal >/dev/null
    mariadbd --skip-networking --socket=/run/mysqld/init.sock --server-id="$server_id" &
    pid=$!
    for _ in $(seq 100); do mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1 && break; sleep 0.2; done
    mariadb --socket=/run/mysqld/init.sock -uroot <<SQL
SET SQL_LOG_BIN = 0;
ALTER USER 'root'@'localhost' IDENTIFIED BY '$(secret mysql_root_password)';
CREATE DATABASE IF NOT EXISTS app CHARACTER SET utf8mb4;
CREATE USER 'app'@'%' IDENTIFIED BY '$(secret mysql_app_password)';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, LOCK TABLES ON app.* TO 'app'@'%';
CREATE USER 'repl'@'%' IDENTIFIED BY '$(secret mysql_repl_password)';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
CREATE USER 'monitor'@'%' IDENTIFIED BY '$(secret mysql_monitor_password)';
GRANT USAGE, REPLICATION CLIENT ON *.* TO 'monitor'@'%';
CREATE USER 'admin'@'%' IDENTIFIED BY '$(secret mysql_admin_password)';
GRANT ALL ON *.* TO 'admin'@'%' WITH GRANT OPTION;
CHANGE MASTER TO MASTER_HOST = '$PEER', MASTER_USER = 'repl',
  MASTER_PASSWORD = '$(secret mysql_repl_password)', MASTER_USE_GTID = slave_pos,
  MASTER_CONNECT_RETRY = 2;
SQL
    kill "$pid"
    wait "$pid" || true
    touch /var/lib/mysql/.legacy-initialised
fi
# One GTID domain per server: each node's writes keep their own sequence.
exec mariadbd --gtid-domain-id="$server_id" "$@"
