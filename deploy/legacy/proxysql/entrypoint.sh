#!/bin/bash
# Renders the configuration from the template, the Swarm secrets,
# MYSQL_SERVERS (the pair, "mysql-a,mysql-b") and FENCED_SERVERS (servers
# failover.sh has fenced: they start OFFLINE_HARD, so no write reaches them),
# into a tmpfs.
set -euo pipefail
secret() { tr -d '\n' < "/run/secrets/$1"; }
status() { case ",${FENCED_SERVERS:-}," in *",$1,"*) echo OFFLINE_HARD ;; *) echo ONLINE ;; esac; }
IFS=, read -r server1 server2 <<<"${MYSQL_SERVERS:-mysql-a,mysql-b}"
umask 077
sed -e "s|@ADMIN_PASSWORD@|$(secret proxysql_admin_password)|" \
    -e "s|@MONITOR_PASSWORD@|$(secret mysql_monitor_password)|" \
    -e "s|@APP_PASSWORD@|$(secret mysql_app_password)|" \
    -e "s|@SERVER1@|$server1|" -e "s|@STATUS1@|$(status "$server1")|" \
    -e "s|@SERVER2@|$server2|" -e "s|@STATUS2@|$(status "$server2")|" \
    /etc/proxysql.cnf.tmpl > /run/proxysql/proxysql.cnf
exec "$@"
