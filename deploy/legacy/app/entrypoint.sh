#!/bin/sh
# Renders the application's settings from the environment and the Swarm
# secrets into /run/app (a tmpfs mount), then runs Apache. Secrets are read
# from files (*_FILE), never from plain environment variables.
set -eu
read_secret() { [ -n "${1:-}" ] && [ -r "$1" ] && tr -d '\n' <"$1" || true; }
MYSQL_PASSWORD=$(read_secret "${MYSQL_PASSWORD_FILE:-}")
REDIS_PASSWORD=$(read_secret "${REDIS_PASSWORD_FILE:-}")
umask 077
cat > /run/app/settings.ini <<INI
[mysql]
host = ${MYSQL_HOST:-proxysql}
port = ${MYSQL_PORT:-6033}
user = ${MYSQL_USER:-app}
password = ${MYSQL_PASSWORD}
database = ${MYSQL_DATABASE:-app}

[redis]
# Sentinels to ask for the primary; empty: REDIS_HOST directly (migration phase 2)
sentinels = ${REDIS_SENTINELS-tasks.sentinel:26379}
host = ${REDIS_HOST:-}
service = ${REDIS_SERVICE:-legacy}
password = ${REDIS_PASSWORD}
INI
export APP_SETTINGS=/run/app/settings.ini
exec "$@"
