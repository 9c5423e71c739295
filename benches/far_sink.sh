#!/usr/bin/env bash
# The paste service far away (issue: performance as the work grows). The
# bundled paste server plays it (`paste-server --delay`, `--knee`), on this
# machine with local Redis and ClickHouse:
#   1. Fixed delays of 20, 50 and 200 ms at the default settings
#      (publisher.concurrency = 32): the publish rate against 32 / delay.
#   2. A fragile service: 20 ms, slower by half a delay per request beyond
#      KNEE (16) in flight, 503 from twice that on. Fixed concurrency at the
#      knee (the best fixed setting), at twice the knee, and "adaptive":
#      rate and 503s of each.
# The rate is measured at the sink: pastes over the span from the first to
# the last paste received. One JSON line per case, then a summary.
# Usage: bash benches/far_sink.sh          (SECONDS_PER_CASE, KNEE override)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PER_CASE=${SECONDS_PER_CASE:-8}
KNEE=${KNEE:-16}
bash scripts/install-deps.sh >/dev/null
python3 -c 'import redis' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check redis
cargo build --release --locked --quiet
BIN=$ROOT/target/release/device-lookup
source scripts/lib.sh
bench_work far
start_redis
start_clickhouse

# case NAME DELAY_MS EXPECTED_RATE PASTE_OPTIONS CONFIG_LINES: one drain, one JSON line.
case_run() {
    local name=$1 delay_ms=$2 expected=$3 options=$4 extra=$5 tasks port cfg
    tasks=$(python3 -c "print(max(200, int($expected * $PER_CASE)))")
    port=$(free_port)
    "$BIN" paste-server --listen "127.0.0.1:$port" --delay "${delay_ms}ms" $options >/dev/null 2>&1 &
    local sink=$!
    pids+=("$sink")
    wait_for "paste server" 10 curl -sf "http://127.0.0.1:$port/_stats"
    cfg=$(bench_config "$name" "$port" "$(printf 'max_attempts = 1000\n%s' "$extra")")
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    [ -e "$WORK/seeded" ] || { "$BIN" --config "$cfg" seed --rows 100000 --seed 5 >/dev/null 2>&1; touch "$WORK/seeded"; }
    "$BIN" --config "$cfg" enqueue --count "$tasks" --hit-ratio 1 --seed 5 --id-prefix "$name-" >/dev/null 2>&1
    "$BIN" --config "$cfg" run >"$WORK/$name.log" 2>&1 &
    local daemon=$!
    pids+=("$daemon")
    wait_for "$tasks lines" 600 lines_at_least "$WORK/$name.jsonl" "$tasks"
    kill -TERM "$daemon" && wait "$daemon" || true
    python3 - "$name" "$delay_ms" "$expected" "http://127.0.0.1:$port" <<'PY'
import json, sys, urllib.request
name, delay_ms, expected, base = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
pastes = json.load(urllib.request.urlopen(base + "/_pastes"))
stats = json.load(urllib.request.urlopen(base + "/_stats"))
t = sorted(p["received_ms"] for p in pastes)
rate = (len(t) - 1) / ((t[-1] - t[0]) / 1000)
print(json.dumps({"case": name, "delay_ms": delay_ms, "pastes": len(t), "per_sec": round(rate, 1),
                  "expected_per_sec": expected, "share": round(rate / expected, 3),
                  "overloaded_503": stats["overloaded"], "max_in_flight": stats["max_in_flight"]}))
PY
    kill "$sink" 2>/dev/null || true
}

{
for d in 20 50 200; do
    case_run "default-${d}ms" "$d" "$(python3 -c "print(32 / ($d / 1000))")" "" ""
done
best=$(python3 -c "print($KNEE / 0.020)")
case_run "knee-fixed-$KNEE" 20 "$best" "--knee $KNEE" "concurrency = $KNEE"
case_run "knee-fixed-$((2 * KNEE))" 20 "$best" "--knee $KNEE" "concurrency = $((2 * KNEE))"
case_run "knee-adaptive" 20 "$best" "--knee $KNEE" 'concurrency = "adaptive"'
case_run "fast-fixed-32" 0 2500 "" ""
case_run "fast-adaptive" 0 2500 "" 'concurrency = "adaptive"'
} | tee "$WORK/far.jsonl"
python3 - "$WORK/far.jsonl" <<'PY'
import json, sys
rows = {r["case"]: r for r in map(json.loads, open(sys.argv[1]))}
for d in (20, 50, 200):
    r = rows[f"default-{d}ms"]
    print(f"default settings, {d} ms away: {r['per_sec']}/s = {100 * r['share']:.0f}% of 32/delay")
knee = [k for k in rows if k.startswith("knee-fixed-")]
best = rows[min(knee, key=lambda k: int(k.rsplit("-", 1)[1]))]
twice = rows[max(knee, key=lambda k: int(k.rsplit("-", 1)[1]))]
a = rows["knee-adaptive"]
print(f"fragile service: adaptive {a['per_sec']}/s = {100 * a['per_sec'] / best['per_sec']:.0f}% of the best fixed "
      f"({best['per_sec']}/s); 503s: adaptive {a['overloaded_503']}, fixed at twice the knee {twice['overloaded_503']} "
      f"({twice['per_sec']}/s)")
f, fa = rows["fast-fixed-32"], rows["fast-adaptive"]
print(f"fast sink: adaptive {fa['per_sec']}/s against fixed 32 {f['per_sec']}/s ({fa['per_sec'] / f['per_sec']:.3f})")
PY
