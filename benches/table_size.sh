#!/usr/bin/env bash
# The table grows (issue: performance as the work grows). One ClickHouse,
# seeded in turn with each of SIZES rows (1M, 10M, 100M); for each size:
#   - the seeding rate (`seed --no-optimize`);
#   - three states: the table "as merged" (the parts the server's own
#     merges leave once they stop), "optimized" (after OPTIMIZE ... FINAL,
#     one part, as `seed` leaves it by default), and "join": the daemon
#     reading the in-memory copy (`clickhouse.lookup = "join"`), built by
#     `seed` from the optimized table; the time to optimize, and to build the
#     copy with the server's memory it took;
#   - in each state, RUNS drains of TASKS queued tasks (all hits, new devices
#     each time) by device-lookup at its default settings, nginx as the sink;
#   - per drain: tasks/s, ClickHouse CPU per looked-up device, and from the
#     server's query log the lookup queries' count, keys per query, rows
#     read per query and per key, and their duration p50/p99.
# The server is configured as the package ships it where it matters here:
# an 8 GiB cache of uncompressed blocks (allocated as used), and the query
# log on. The first drain of a size starts with a cold cache.
# One JSON line per drain, then a table. COMPARE=<another build> adds a
# drain of that build beside each of the table's (order alternating).
# Usage: bash benches/table_size.sh   (SIZES, TASKS, RUNS, BIN override)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZES=${SIZES:-1000000 10000000 100000000}
TASKS=${TASKS:-100000}
RUNS=${RUNS:-2}
bash scripts/install-deps.sh >/dev/null
if [ -z "${BIN:-}" ]; then
    cargo build --release --locked --quiet
    BIN=$ROOT/target/release/device-lookup
fi
source scripts/lib.sh
bench_work size
start_redis
CH_CONFIG_EDIT='s#<uncompressed_cache_size>[0-9]*#<uncompressed_cache_size>8589934592#; s#</max_memory_usage>#&<log_queries>1</log_queries>#' \
    start_clickhouse
# The server's memory with no table, for the copy's share of it.
rss_empty=$(awk '/VmRSS/ {print $2}' "/proc/$CH_PID/status")
start_nginx_sink
ch() { curl -sf "http://127.0.0.1:$CH_PORT/" --data-binary "$1"; }

cfg=$(bench_config bench "$SINK_PORT")

merges_done() { [ "$(ch "SELECT count() FROM system.merges")" = 0 ]; }

# drain BINARY LABEL ROWS STATE: one JSON line.
drain() {
    local bin=$1 label=$2 rows=$3 state=$4 since ticks0 t0 t1 ticks1 daemon lookup=table
    [ "$state" != join ] || lookup="join"
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    rm -f "$WORK/bench.jsonl"
    "$bin" --config "$cfg" enqueue --count "$TASKS" --hit-ratio 1 --seed "$((run * 7 + rows % 97))" \
        --id-prefix "$label-$rows-$state-$run-" >/dev/null 2>&1
    since=$(ch "SELECT now()")
    ticks0=$(awk '{print $14 + $15}' "/proc/$CH_PID/stat")
    t0=$(date +%s.%N)
    DEVICE_LOOKUP__CLICKHOUSE__LOOKUP=$lookup "$bin" --config "$cfg" run >"$WORK/daemon.log" 2>&1 &
    daemon=$!
    pids+=("$daemon")
    wait_for "$TASKS lines" 900 lines_at_least "$WORK/bench.jsonl" "$TASKS"
    t1=$(date +%s.%N)
    ticks1=$(awk '{print $14 + $15}' "/proc/$CH_PID/stat")
    kill -TERM "$daemon" && wait "$daemon" || true
    ch "SYSTEM FLUSH LOGS"
    # The lookup's queries: the ones with the external table `keys`.
    ch "SELECT count(), sum(read_rows), quantileExact(0.5)(query_duration_ms), quantileExact(0.99)(query_duration_ms)
        FROM system.query_log WHERE type = 2 AND event_time >= toDateTime('$since')
        AND query LIKE '%argMax(username, updated_at)%' AND query NOT LIKE '%query_log%' FORMAT TSV" >"$WORK/q.tsv"
    python3 - "$label:$state" "$rows" "$run" "$TASKS" "$t0" "$t1" "$ticks0" "$ticks1" "$(getconf CLK_TCK)" \
        "$(ch "SELECT count() FROM system.parts WHERE active AND database = 'devices' AND table = 'users'")" \
        "$WORK/q.tsv" <<'PY'
import json, sys
label, rows, run, tasks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t0, t1, k0, k1, hz, parts = float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9]), int(sys.argv[10])
queries, read_rows, p50, p99 = (float(x) for x in open(sys.argv[11]).read().split())
print(json.dumps({"build": label, "rows": rows, "run": run, "parts": parts, "tasks": tasks,
                  "per_sec": round(tasks / (t1 - t0)),
                  "clickhouse_cpu_us_per_device": round((k1 - k0) / hz / tasks * 1e6, 1),
                  "queries": int(queries), "keys_per_query": round(tasks / max(queries, 1)),
                  "rows_read_per_query": round(read_rows / max(queries, 1)),
                  "rows_read_per_key": round(read_rows / tasks), "query_p50_ms": p50, "query_p99_ms": p99}))
PY
}

drains() { # drains ROWS STATE
    local COMPARE=${COMPARE:-}
    [ "$2" != join ] || COMPARE=  # an older build may not know clickhouse.lookup
    for run in $(seq "$RUNS"); do
        if [ -n "${COMPARE:-}" ] && [ $((run % 2)) = 0 ]; then
            drain "$COMPARE" compare "$1" "$2" | tee -a "$WORK/results.jsonl"
        fi
        drain "$BIN" this "$1" "$2" | tee -a "$WORK/results.jsonl"
        if [ -n "${COMPARE:-}" ] && [ $((run % 2)) = 1 ]; then
            drain "$COMPARE" compare "$1" "$2" | tee -a "$WORK/results.jsonl"
        fi
    done
}
elapsed() { python3 -c "print(round($(date +%s.%N) - $1, 2))"; }

for rows in $SIZES; do
    t0=$(date +%s.%N)
    "$BIN" --config "$cfg" seed --rows "$rows" --seed 1 --truncate --no-optimize >/dev/null 2>&1
    s=$(elapsed "$t0")
    echo "{\"seed_rows\": $rows, \"seconds\": $s, \"rows_per_sec\": $(python3 -c "print(round($rows / max($s, 0.01)))")}" \
        | tee -a "$WORK/results.jsonl"
    wait_for "merges after seeding" 1800 merges_done
    drains "$rows" merged
    t0=$(date +%s.%N)
    ch "OPTIMIZE TABLE devices.users FINAL"
    echo "{\"optimize_rows\": $rows, \"seconds\": $(elapsed "$t0")}" | tee -a "$WORK/results.jsonl"
    drains "$rows" optimized
    # Room for the copy: the block cache is what the table's lookups needed.
    ch "SYSTEM DROP UNCOMPRESSED CACHE"
    t0=$(date +%s.%N)
    DEVICE_LOOKUP__CLICKHOUSE__LOOKUP="join" "$BIN" --config "$cfg" seed --rows 0 --no-optimize >/dev/null 2>&1
    s=$(elapsed "$t0")
    # A restart: the server loads the copy from its files (how long that takes
    # matters to operators), and its memory is then the copy's, with no cache
    # or freed blocks in it.
    t0=$(date +%s.%N)
    restart_clickhouse 1800
    r=$(elapsed "$t0")
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$CH_PID/status")
    echo "{\"join_rows\": $rows, \"seconds\": $s, \"restart_seconds\": $r, \"bytes_per_row\": $(((rss - rss_empty) * 1024 / rows))}" \
        | tee -a "$WORK/results.jsonl"
    drains "$rows" join
done
cp "$WORK/results.jsonl" "$ROOT/target/table-size-results.jsonl"

python3 - "$WORK/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
seeds = {r["seed_rows"]: r for r in rows if "seed_rows" in r}
optimized = {r["optimize_rows"]: r for r in rows if "optimize_rows" in r}
joins = {r["join_rows"]: r for r in rows if "join_rows" in r}
drains = [r for r in rows if "build" in r]
if not drains or any(d["queries"] == 0 or d["rows_read_per_query"] == 0 for d in drains):
    sys.exit("a drain's lookups are missing from the server's query log")
print("\nrows        build:state       parts  tasks/s  CH us/device  keys/query  rows read/query  rows/key  p50 ms  p99 ms")
for d in drains:
    print(f"{d['rows']:>11,}  {d['build']:<17} {d['parts']:>5} {d['per_sec']:>8,} {d['clickhouse_cpu_us_per_device']:>13} "
          f"{d['keys_per_query']:>11} {d['rows_read_per_query']:>16,} {d['rows_read_per_key']:>9} {d['query_p50_ms']:>7} {d['query_p99_ms']:>7}")
for n, s in seeds.items():
    print(f"seeding {n:,} rows: {s['seconds']} s ({s['rows_per_sec']:,} rows/s); "
          f"OPTIMIZE FINAL {optimized.get(n, {}).get('seconds', '-')} s; "
          f"in-memory copy built in {joins.get(n, {}).get('seconds', '-')} s, "
          f"loaded at a restart in {joins.get(n, {}).get('restart_seconds', '-')} s, "
          f"{joins.get(n, {}).get('bytes_per_row', '-')} bytes of server memory per row")
# The last drain of each size and state (a warm cache): ratios to the smallest size.
for build in ("this", "compare"):
    for state in ("merged", "optimized", "join"):
        last = {d["rows"]: d for d in drains if d["build"] == f"{build}:{state}"}
        sizes = sorted(last)
        for n in sizes[1:]:
            d, base = last[n], last[sizes[0]]
            if not base["clickhouse_cpu_us_per_device"]:
                continue  # under the CPU clock's resolution (a tiny run)
            print(f"{build}, {state}: {n:,} rows against {sizes[0]:,} (last drains): CPU per device "
                  f"x{d['clickhouse_cpu_us_per_device'] / base['clickhouse_cpu_us_per_device']:.2f}, "
                  f"drain rate x{d['per_sec'] / base['per_sec']:.2f}")
# The copy against the table's best at the smallest size: what a deployment gains.
best = {d["rows"]: d for d in drains if d["build"] == "this:optimized"}
for n, d in sorted({d["rows"]: d for d in drains if d["build"] == "this:join"}.items()):
    base = best[min(best)]
    if base["clickhouse_cpu_us_per_device"]:
        print(f"this, join at {n:,} rows against optimized at {min(best):,}: CPU per device "
              f"x{d['clickhouse_cpu_us_per_device'] / base['clickhouse_cpu_us_per_device']:.2f}, "
              f"drain rate x{d['per_sec'] / base['per_sec']:.2f}")
PY
