#!/bin/bash
# Fills the template with the passwords from the Swarm secrets, into a tmpfs.
set -euo pipefail
secret() { tr -d '\n' < "/run/secrets/$1"; }
umask 077
sed -e "s|@ADMIN_PASSWORD@|$(secret proxysql_admin_password)|" \
    -e "s|@MONITOR_PASSWORD@|$(secret mysql_monitor_password)|" \
    -e "s|@APP_PASSWORD@|$(secret mysql_app_password)|" \
    /etc/proxysql.cnf.tmpl > /tmp/proxysql.cnf
exec "$@"
