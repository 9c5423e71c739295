"""Runs the daemon's SQL on a current ClickHouse: the in-process engine of
PyPI chdb-core. Reads {"table", "join_build", "queries": {name: sql}} as
JSON on stdin (the statements exactly as the daemon sends them) and prints
JSON: the server's version, and for each query its answer while the copy is
being built and once it is complete, as [ip, mac, username] rows.

A current server through chdb has no HTTP external data: the batch's keys
are an ordinary table named `keys` in the session's database, which is what
the queries' `keys` then names; and answers come as TSV, not RowBinary.
"""
import json
import sys
import tempfile

from chdb import session

spec = json.load(sys.stdin)
s = session.Session(tempfile.mkdtemp(prefix="chdb-"))
run = lambda sql: str(s.query(sql, "TSV"))

run("CREATE DATABASE IF NOT EXISTS devices")
run(spec["table"])
run("INSERT INTO devices.users VALUES ('anna', '10.0.0.1', 1, '2020-01-01 00:00:00'), "
    "('anna-before', '10.0.0.1', 1, '2010-01-01 00:00:00'), ('bob', '10.0.0.2', 2, '2020-01-01 00:00:00')")
run("CREATE TABLE keys (ipv4 IPv4, mac UInt64) ENGINE = Memory")
# A hit, the crossed pair (bob's address with anna's MAC), a miss, and a
# device bound after the copy was built.
run("INSERT INTO keys VALUES ('10.0.0.1', 1), ('10.0.0.2', 1), ('10.0.0.9', 9), ('10.0.0.3', 3)")


def answer(sql):
    sql = sql.removesuffix(" FORMAT RowBinary")
    try:
        return sorted([int(f[0]), int(f[1]), f[2]] for f in (line.split("\t") for line in run(sql).splitlines()) if f)
    except Exception as e:  # chdb raises its own error type, with the server's text
        return {"error": str(e)[:300]}


out = {"version": run("SELECT version()").strip(), "building": {}, "complete": {}}
*build, last = spec["join_build"]
for sql in build:
    run(sql)
out["building"] = {name: answer(sql) for name, sql in spec["queries"].items()}
run(last)
# Bound later: a new device, and anna's device again.
run("INSERT INTO devices.users VALUES ('carl', '10.0.0.3', 3, '2020-01-01 00:00:00'), "
    "('anna-after', '10.0.0.1', 1, '2030-01-01 00:00:00')")
out["complete"] = {name: answer(sql) for name, sql in spec["queries"].items()}
print(json.dumps(out))
