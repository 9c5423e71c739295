"""Lookup layouts on the seeded table, measured in ClickHouse's own CPU time
(from /proc of the server process) per looked-up device, with the keys sent
as external RowBinary data exactly as the daemon sends them:

- table:    the tuple set alone, `WHERE (ipv4, mac) IN keys` (argMax per
            device);
- prewhere: the same with the address filtered first, in PREWHERE;
- having:   the daemon's query: PREWHERE on the address alone, the exact
            device matched after grouping (HAVING), so the tuple set is in
            neither the index analysis nor the per-row filter;
- tuples:   no external data: the keys as literal tuples in a query POSTed
            as the body (no URL limit; 18.16 takes queries up to 256 KiB),
            `ipv4` also as a literal set in PREWHERE;
- literal:  the PREWHERE set written into the query text as literals (both
            a literal and a subquery's set are matched against the primary
            key; the literal travels in the URL, which refuses 4000 keys);
- join:     an in-memory Join-engine table built from the same rows
            (ANY INNER, ipv4 + mac), joined with the keys.

The keys travel with use_uncompressed_cache=1 and no row limit on it, as the
daemon asks.

Run by benches/pipeline.sh after seeding; prints one JSON line per case."""
import argparse
import json
import os
import random
import struct
import time
import urllib.error
import urllib.parse
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("--ch-port", type=int, required=True)
p.add_argument("--ch-pid", type=int, required=True)
p.add_argument("--table", default="devices.users")
p.add_argument("--reps", type=int, default=20)
args = p.parse_args()
BOUNDARY = b"layoutsboundary"


def query(sql, keys=None, in_body=False):
    params = {} if in_body else {"query": sql}
    headers = {}
    data = sql.encode() if in_body else None
    if keys is not None:
        params.update({"keys_structure": "ipv4 UInt32, mac UInt64", "keys_format": "RowBinary",
                       "use_uncompressed_cache": "1", "merge_tree_max_rows_to_use_cache": "1000000000000"})
        body = b"".join(struct.pack("<IQ", ip, mac) for ip, mac in keys)
        data = (b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="keys"; filename="keys"\r\n'
                b"Content-Type: application/octet-stream\r\n\r\n" + body + b"\r\n--" + BOUNDARY + b"--\r\n")
        headers["Content-Type"] = "multipart/form-data; boundary=" + BOUNDARY.decode()
    url = f"http://127.0.0.1:{args.ch_port}/?" + urllib.parse.urlencode(params)
    return urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers, method="POST")).read()


def cpu_ticks():
    fields = open(f"/proc/{args.ch_pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kb():
    return next(int(line.split()[1]) for line in open(f"/proc/{args.ch_pid}/status") if line.startswith("VmRSS"))


T = args.table
J = T + "_join_bench"
keys = [tuple(map(int, line.split())) for line in
        query(f"SELECT toUInt32(ipv4), mac FROM {T} ORDER BY rand() LIMIT 50000 FORMAT TSV").decode().splitlines()]
query(f"DROP TABLE IF EXISTS {J}")
rss_before = rss_kb()
t0 = time.monotonic()
query(f"CREATE TABLE {J} ENGINE = Join(ANY, INNER, ipv4, mac) AS "
      f"SELECT toUInt32(ipv4) AS ipv4, mac, argMax(username, updated_at) AS username FROM {T} GROUP BY ipv4, mac")
build_s = time.monotonic() - t0
rss_after = rss_kb()
G = "toUInt32(ipv4) AS ip, mac, argMax(username, updated_at) AS username"
cases = {
    "table": f"SELECT {G} FROM {T} WHERE (ipv4, mac) IN keys GROUP BY ipv4, mac FORMAT RowBinary",
    "prewhere": f"SELECT {G} FROM {T} PREWHERE ipv4 IN (SELECT ipv4 FROM keys) WHERE (ipv4, mac) IN keys "
                f"GROUP BY ipv4, mac FORMAT RowBinary",
    "having": f"SELECT {G} FROM {T} PREWHERE ipv4 IN (SELECT ipv4 FROM keys) GROUP BY ipv4, mac "
              f"HAVING (ipv4, mac) IN keys FORMAT RowBinary",
    "tuples": lambda batch: (f"SELECT {G} FROM {T} PREWHERE ipv4 IN ({','.join(str(ip) for ip, _ in batch)}) "
                            f"WHERE (ipv4, mac) IN ({','.join(f'({ip},{mac})' for ip, mac in batch)}) "
                            f"GROUP BY ipv4, mac FORMAT RowBinary", True),
    "literal": lambda batch: f"SELECT {G} FROM {T} PREWHERE ipv4 IN ({','.join(str(ip) for ip, _ in batch)}) "
                             f"WHERE (ipv4, mac) IN keys GROUP BY ipv4, mac FORMAT RowBinary",
    "join": f"SELECT ipv4, mac, username FROM keys ANY INNER JOIN {J} USING (ipv4, mac) FORMAT RowBinary",
}
hz = os.sysconf("SC_CLK_TCK")
try:
    for n in (1000, 4000):
        for name, sql in cases.items():
            started, ticks = time.monotonic(), cpu_ticks()
            try:
                for _ in range(args.reps):
                    batch = random.sample(keys, n)
                    text = sql(batch) if callable(sql) else sql
                    if isinstance(text, tuple):
                        query(text[0], in_body=True)
                    else:
                        query(text, batch)
            except urllib.error.HTTPError as e:
                # The literal set travels in the URL, which the server may refuse as too long.
                print(json.dumps({"stage": f"layout {name} {n} keys", "error": e.read().decode()[:200]}))
                continue
            wall = (time.monotonic() - started) / args.reps
            cpu = (cpu_ticks() - ticks) / hz / args.reps
            print(json.dumps({"stage": f"layout {name} {n} keys", "wall_ms": round(wall * 1000, 1),
                              "server_cpu_ms": round(cpu * 1000, 1), "cpu_us_per_key": round(cpu / n * 1e6, 1)}))
    print(json.dumps({"stage": "layout join build", "seconds": round(build_s, 2),
                      "server_rss_growth_mb": round((rss_after - rss_before) / 1024, 1)}))
finally:
    query(f"DROP TABLE IF EXISTS {J}")
