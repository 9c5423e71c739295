#!/usr/bin/env bash
# The whole system end to end on this machine, with nothing running before:
# starts Redis and ClickHouse on free loopback ports under .demo/, seeds the
# table, enqueues tasks, runs the daemon until the queue is drained, stops it
# with SIGTERM, and shows what was published.
#
# Paste service: the bundled pastebin-protocol server, unless PASTEBIN_API_KEY
# is set; then the real pastebin.com, with few tasks and a rate limit (a free
# account gets 10 to 20 pastes a day).
#
#   ROWS=1000000 TASKS=20000 bash scripts/demo.sh
#   PASTEBIN_API_KEY=xxxxxxxx bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROWS=${ROWS:-100000}
if [ -n "${PASTEBIN_API_KEY:-}" ]; then TASKS=${TASKS:-3}; else TASKS=${TASKS:-5000}; fi

bash scripts/install-deps.sh
cargo build --release --locked --quiet
BIN=$ROOT/target/release/device-lookup

WORK=$ROOT/.demo
rm -rf "$WORK"
mkdir -p "$WORK"
source scripts/lib.sh
start_redis --appendonly yes
start_clickhouse

if [ -n "${PASTEBIN_API_KEY:-}" ]; then
    PASTE_URL=https://pastebin.com/api/api_post.php
    export DEVICE_LOOKUP__PUBLISHER__API_DEV_KEY=$PASTEBIN_API_KEY
    RATE_LIMIT=$'[publisher.rate_limit]\nrequests = 1\nper = "5s"'
    echo "publishing to pastebin.com ($TASKS tasks)"
else
    "$BIN" paste-server --listen 127.0.0.1:0 --dir "$WORK/pastes" >"$WORK/paste-server.log" 2>&1 &
    pids+=($!)
    wait_for "the paste server" 10 grep -q "listening on" "$WORK/paste-server.log"
    PASTE_BASE=$(sed -n 's/^listening on //p' "$WORK/paste-server.log")
    PASTE_URL=$PASTE_BASE/api/api_post.php
    export DEVICE_LOOKUP__PUBLISHER__API_DEV_KEY=demo-key
    RATE_LIMIT=""
    echo "publishing to the local paste server at $PASTE_BASE"
fi

cat >"$WORK/config.toml" <<TOML
[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
[clickhouse]
url = "http://127.0.0.1:$CH_PORT"
[publisher]
url = "$PASTE_URL"
$RATE_LIMIT
[output]
path = "$WORK/results.jsonl"
[http]
listen = "127.0.0.1:$(free_port)"
[log]
format = "text"
TOML
export DEVICE_LOOKUP_CONFIG=$WORK/config.toml

"$BIN" seed --rows "$ROWS" --seed 1
"$BIN" enqueue --count "$TASKS" --hit-ratio 0.9 --invalid-ratio 0.02 --seed 1
"$BIN" check

START=$(date +%s.%N)
"$BIN" run >"$WORK/daemon.log" 2>&1 &
DAEMON=$!
pids+=("$DAEMON")
wait_for "the queue to drain" 600 queue_drained device-lookup:tasks
END=$(date +%s.%N)
kill -TERM $DAEMON
wait $DAEMON && echo "daemon exited 0 after SIGTERM"

echo
echo "processed $TASKS tasks in $(python3 -c "print(f'{$END - $START:.2f}')") s"
echo "results lines: $(wc -l <"$WORK/results.jsonl")   dead letters: $(redis-cli -p "$REDIS_PORT" llen device-lookup:tasks:dead)"
grep -o '"tasks":"[^"]*"' "$WORK/daemon.log" | tail -1 || grep "stopped" "$WORK/daemon.log" | tail -1
echo
echo "first results:"
head -3 "$WORK/results.jsonl"
URL=$(head -1 "$WORK/results.jsonl" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["url"])')
echo
echo "the paste at $URL:"
if [ -n "${PASTEBIN_API_KEY:-}" ]; then echo "(open it in a browser)"; else curl -s "${URL/$PASTE_BASE/$PASTE_BASE/raw}"; echo; fi
echo "one dead letter:"
redis-cli -p "$REDIS_PORT" lindex device-lookup:tasks:dead 0
echo
echo "everything is under .demo/ (daemon.log, results.jsonl, pastes/)"
