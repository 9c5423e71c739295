#!/bin/sh
# redis | sentinel | health. The password comes from the Swarm secret.
set -eu
PASS=$(cat /run/secrets/redis_password)
case "${1:-redis}" in
redis)
    exec redis-server /etc/redis/redis.conf --requirepass "$PASS" --masterauth "$PASS" ${REDIS_ARGS:-}
    ;;
sentinel)
    # Sentinel persists what it learns (the current primary) in its own file.
    [ -f /data/sentinel.conf ] || { cp /etc/redis/sentinel.conf /data/sentinel.conf; echo "sentinel auth-pass legacy $PASS" >> /data/sentinel.conf; }
    exec redis-sentinel /data/sentinel.conf
    ;;
health)
    if [ -f /data/sentinel.conf ] && pgrep redis-sentinel >/dev/null; then
        exec redis-cli -p 26379 ping
    fi
    REDISCLI_AUTH=$PASS exec redis-cli ping
    ;;
*)
    exec "$@"
    ;;
esac
