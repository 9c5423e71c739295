#!/usr/bin/env python3
"""The compose demo, run as a user runs it, and checked from outside.

Run by `scripts/containers.sh demo` (with the CI override, which swaps in the
Redis and ClickHouse stand-ins). It brings the whole project up, then checks:
the seed and enqueue jobs complete; both replicas become healthy; a replica
restarted mid-run loses nothing and writes nothing twice; the union of the
replicas' results files (read from their volumes) has exactly one line per
hit enqueued and nothing else; the dead letters are the malformed tasks; each
replica's /metrics agrees with its file; the containers run as non-root on a
read-only root filesystem with a healthy HEALTHCHECK; `docker compose stop`
ends each replica with exit code 0.

What was enqueued is known by running the project's own enqueue job again,
into a stream nobody consumes: the generator is deterministic (same seed,
same table), so it produces the same tasks.
"""

import argparse
import collections
import datetime
import io
import json
import subprocess
import sys
import tarfile
import time
import urllib.request

QUEUE = "device-lookup:tasks"
REPLICAS = {"device-lookup-a": 9187, "device-lookup-b": 9188}
PROJECT = ""


def run(*args, check=True):
    p = subprocess.run(args, capture_output=True, text=True)
    if check and p.returncode != 0:
        sys.exit(f"FAILED: {' '.join(args)}\n{p.stdout}{p.stderr}")
    return p.stdout


def compose(*args, check=True):
    return run("docker", "compose", "-p", PROJECT, "-f", "docker-compose.yml", "-f", "docker-compose.ci.yml",
               *args, check=check)


def wait(what, seconds, cond):
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            logs = compose("logs", "--tail", "20", check=False)
            sys.exit(f"FAILED: timed out after {seconds} s waiting for {what}\n{logs}")
        time.sleep(0.5)


def container(service):
    cid = compose("ps", "-a", "-q", service).strip()
    if not cid:
        sys.exit(f"FAILED: no container for {service}")
    return cid


def inspect(service):
    return json.loads(run("docker", "inspect", container(service)))[0]


def redis(*args):
    return compose("exec", "-T", "redis", "redis-cli", *args).strip()


def lines(service):
    """The complete lines of a replica's results file, read from its volume."""
    p = subprocess.run(["docker", "cp", f"{container(service)}:/var/lib/device-lookup/results.jsonl", "-"],
                       capture_output=True)
    if p.returncode != 0:
        return []
    with tarfile.open(fileobj=io.BytesIO(p.stdout)) as tar:
        text = tar.extractfile(tar.getmembers()[0]).read().decode()
    return [json.loads(l) for l in text[: text.rfind("\n") + 1].splitlines()]


def metrics(port):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for l in body.splitlines():
        if l.startswith("device_lookup_tasks_total{"):
            outcome = l.split('outcome="')[1].split('"')[0]
            out[outcome] = float(l.split()[-1])
    return out


def exited_ok(service):
    state = inspect(service)["State"]
    return state["Status"] == "exited" and state["ExitCode"] == 0


def healthy(service):
    return inspect(service)["State"].get("Health", {}).get("Status") == "healthy"


def parse_time(text):
    """RFC 3339 with any number of fraction digits, as a UTC timestamp."""
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.datetime.fromisoformat(text).timestamp()


def main():
    global PROJECT
    ap = argparse.ArgumentParser()
    ap.add_argument("--project", required=True)
    PROJECT = ap.parse_args().project

    compose("down", "-v", "--remove-orphans", check=False)
    started = time.monotonic()
    compose("up", "-d", "--no-build")
    wait("the seed job to complete", 300, lambda: exited_ok("seed"))
    wait("the enqueue job to complete", 120, lambda: exited_ok("enqueue"))
    print(f"seed and enqueue completed in {time.monotonic() - started:.0f} s")

    # The same tasks again, into a stream no replica reads.
    compose("run", "--rm", "--no-deps", "-e", "DEVICE_LOOKUP__REDIS__QUEUE=check:expected", "enqueue")
    entries = json.loads(redis("--json", "XRANGE", "check:expected", "-", "+"))
    redis("DEL", "check:expected")
    hits, misses, malformed = set(), 0, 0
    for _, flat in entries:
        fields = dict(zip(flat[::2], flat[1::2]))
        if "id" not in fields:
            malformed += 1
        elif fields["ipv4"].startswith(("198.18.", "198.19.")):
            misses += 1
        else:
            hits.add(fields["id"])
    print(f"enqueued: {len(entries)} tasks, {len(hits)} hits, {misses} misses, {malformed} malformed")
    if not hits or not malformed or len(entries) != 20000:
        sys.exit("FAILED: the enqueued tasks are not what the demo enqueues")

    for service in REPLICAS:
        wait(f"{service} to become healthy", 120, lambda s=service: healthy(s))
    union = lambda: [l["id"] for s in REPLICAS for l in lines(s)]
    wait("some progress", 120, lambda: len(union()) >= 2000)
    before = time.monotonic()
    compose("restart", "-t", "40", "device-lookup-a")
    restarted_at = parse_time(inspect("device-lookup-a")["State"]["StartedAt"])
    print(f"restarted device-lookup-a in {time.monotonic() - before:.1f} s, {len(union())} lines written by then")
    wait("device-lookup-a healthy again", 120, lambda: healthy("device-lookup-a"))

    def drained():
        return int(redis("XLEN", QUEUE)) == 0 and len(set(union())) >= len(hits)
    wait("every hit published", 300, drained)

    ids = union()
    twice = [i for i, n in collections.Counter(ids).items() if n > 1]
    failures = []
    if twice:
        failures.append(f"{len(twice)} ids have more than one line, e.g. {twice[:3]}")
    if set(ids) != hits:
        failures.append(f"lines for {len(set(ids) - hits)} ids not enqueued as hits; "
                        f"{len(hits - set(ids))} hits without a line")
    dead = int(redis("LLEN", f"{QUEUE}:dead"))
    if dead != malformed:
        failures.append(f"{dead} dead letters for {malformed} malformed tasks")
    pending = redis("XPENDING", QUEUE, "device-lookup")
    if not pending.startswith("0"):
        failures.append(f"entries still pending: {pending}")

    for service, port in REPLICAS.items():
        m = metrics(port)
        own = lines(service)
        if service == "device-lookup-a":
            # Its counters started again with it.
            own = [l for l in own if parse_time(l["published_at"]) >= restarted_at]
        if service == "device-lookup-a" and not own:
            failures.append("device-lookup-a published nothing after its restart: the restart tested nothing")
        if m.get("published") != len(own):
            failures.append(f"{service}: /metrics says {m.get('published')} published, its file {len(own)} lines")
        info = inspect(service)
        user, read_only = info["Config"]["User"], info["HostConfig"]["ReadonlyRootfs"]
        health = info["State"]["Health"]["Status"]
        if user.split(":")[0] in ("", "0", "root") or not read_only or health != "healthy":
            failures.append(f"{service}: user {user!r}, read-only root {read_only}, health {health}")
        print(f"{service}: {len(lines(service))} lines, metrics {m}, user {user}, read-only {read_only}, {health}")

    compose("stop", "-t", "40")
    for service in REPLICAS:
        code = inspect(service)["State"]["ExitCode"]
        if code != 0:
            failures.append(f"{service} exited {code} on docker compose stop")
    print(f"{len(ids)} lines for {len(hits)} hits, {dead} dead letters, both replicas exited 0 on stop; "
          f"{time.monotonic() - started:.0f} s in all")
    if failures:
        sys.exit("FAILED:\n- " + "\n- ".join(failures))
    print("compose demo: all checks passed")


if __name__ == "__main__":
    main()
