#!/bin/bash
# Renders the configuration from the template, the Swarm secrets and
# FENCED_SERVERS (comma-separated servers failover.sh has fenced: they start
# OFFLINE_HARD, so no write reaches them), into a tmpfs.
set -euo pipefail
secret() { tr -d '\n' < "/run/secrets/$1"; }
status() { case ",${FENCED_SERVERS:-}," in *",$1,"*) echo OFFLINE_HARD ;; *) echo ONLINE ;; esac; }
umask 077
sed -e "s|@ADMIN_PASSWORD@|$(secret proxysql_admin_password)|" \
    -e "s|@MONITOR_PASSWORD@|$(secret mysql_monitor_password)|" \
    -e "s|@APP_PASSWORD@|$(secret mysql_app_password)|" \
    -e "s|@STATUS:mysql-a@|$(status mysql-a)|" \
    -e "s|@STATUS:mysql-b@|$(status mysql-b)|" \
    /etc/proxysql.cnf.tmpl > /run/proxysql/proxysql.cnf
exec "$@"
