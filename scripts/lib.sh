# shellcheck shell=bash
# Shell helpers shared by demo.sh and the benchmarks: free ports, waiting
# for a condition with a deadline, and local Redis/ClickHouse instances under
# a work directory, all stopped when the calling script exits.
# Usage: WORK=/some/dir; source scripts/lib.sh (a benchmark: source it, then
# bench_work NAME)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# bench_work NAME: a fresh WORK directory for a benchmark, removed at exit
# with everything the script started (KEEP=1 keeps it and says where).
bench_work() {
    WORK=$(mktemp -d "/tmp/device-lookup-$1.XXXXXX")
    trap 'cleanup; if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi' EXIT
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() { # wait_for DESCRIPTION SECONDS COMMAND...
    local what=$1 secs=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || { echo "timed out waiting for $what" >&2; exit 1; }
        sleep 0.1
    done
}

# lines_at_least FILE N: FILE exists and holds N lines or more.
lines_at_least() { [ "$(wc -l <"$1" 2>/dev/null || echo 0)" -ge "$2" ]; }

sbin() { command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"; }

# start_redis [extra redis-server args...]: sets REDIS_PORT.
start_redis() {
    REDIS_PORT=$(free_port)
    mkdir -p "$WORK/redis"
    "$(sbin redis-server)" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' "$@" \
        >"$WORK/redis/out.log" 2>&1 &
    pids+=($!)
    wait_for "Redis" 10 redis-cli -p "$REDIS_PORT" ping
}

# start_clickhouse: sets CH_PORT and CH_PID. The config is the tests'
# template, edited by the sed script in CH_CONFIG_EDIT if set.
start_clickhouse() {
    CH_PORT=$(free_port)
    mkdir -p "$WORK/clickhouse/log"
    sed -e "s#@DIR@#$WORK/clickhouse#g" -e "s/@HTTP_PORT@/$CH_PORT/" -e "s/@TCP_PORT@/$(free_port)/" \
        -e "${CH_CONFIG_EDIT:-}" "$ROOT/tests/support/clickhouse-config.xml" >"$WORK/clickhouse/config.xml"
    spawn_clickhouse 30
}

# restart_clickhouse SECONDS: the same server on the same files and ports,
# answering within SECONDS (it loads in-memory tables before it answers).
restart_clickhouse() {
    kill "$CH_PID" && wait "$CH_PID" || true
    spawn_clickhouse "$1"
}

spawn_clickhouse() {
    (cd "$WORK/clickhouse" && exec "$(sbin clickhouse-server)" --config-file="$WORK/clickhouse/config.xml" >/dev/null 2>&1) &
    CH_PID=$!
    pids+=("$CH_PID")
    wait_for "ClickHouse" "$1" curl -sf "http://127.0.0.1:$CH_PORT/ping"
}

# start_nginx_sink: nginx answering every POST with a paste URL, on SINK_PORT;
# the same on SINK_LOG_PORT, logging each request's time to
# $WORK/nginx/access.log.
start_nginx_sink() {
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
    }
    SINK_PORT=$(free_port)
    SINK_LOG_PORT=$(free_port)
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    log_format when '\$msec';
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$SINK_PORT; access_log off; location / { return 200 "http://sink.local/p\n"; } }
    server { listen 127.0.0.1:$SINK_LOG_PORT; access_log $WORK/nginx/access.log when; location / { return 200 "http://sink.local/p\n"; } }
}
NGINX
    "$(sbin nginx)" -c "$WORK/nginx/nginx.conf" &
    NGINX_PID=$!
    pids+=("$NGINX_PID")
    wait_for "nginx" 10 curl -sf -X POST "http://127.0.0.1:$SINK_PORT/api/api_post.php"
}

# bench_config NAME SINK_PORT [LINES]: a config for the servers started here,
# publishing to the sink on SINK_PORT (LINES added to [publisher]), results
# in $WORK/NAME.jsonl, logs as JSON; writes $WORK/NAME.toml, prints its path.
bench_config() {
    cat >"$WORK/$1.toml" <<TOML
[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
[clickhouse]
url = "http://127.0.0.1:$CH_PORT"
[publisher]
url = "http://127.0.0.1:$2/api/api_post.php"
api_dev_key = "bench"
${3:-}
[output]
path = "$WORK/$1.jsonl"
[http]
listen = "127.0.0.1:$(free_port)"
[log]
format = "json"
TOML
    echo "$WORK/$1.toml"
}

# queue_drained QUEUE: true when the list and every consumer's processing hash
# are empty (consumers from the set, not a SCAN over every done record).
queue_drained() {
    [ "$(redis-cli -p "$REDIS_PORT" llen "$1")" = 0 ] || return 1
    local c
    for c in $(redis-cli -p "$REDIS_PORT" smembers "$1:consumers"); do
        [ "$(redis-cli -p "$REDIS_PORT" hlen "$1:processing:$c")" = 0 ] || return 1
    done
}
