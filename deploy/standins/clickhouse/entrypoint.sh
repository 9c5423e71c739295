#!/bin/sh
# What the demo uses of the official image's entrypoint: CLICKHOUSE_USER and
# CLICKHOUSE_PASSWORD make that user (18.16 reads users.d, root <yandex>).
set -eu
user=${CLICKHOUSE_USER:-default}
if [ "$user" != default ]; then
    cat >"/etc/clickhouse-server/users.d/$user.xml" <<XML
<yandex><users><$user>
  <password>${CLICKHOUSE_PASSWORD:-}</password>
  <networks><ip>::/0</ip></networks>
  <profile>default</profile>
  <quota>default</quota>
</$user></users></yandex>
XML
fi
exec clickhouse-server --config-file=/etc/clickhouse-server/config.xml
