"""Offers tasks at a fixed rate: LPUSHes one small batch every 10 ms, each
task's id carrying the nanosecond it was sent ("lat-<n>-<ns>"), so that the
results file alone gives enqueue-to-line latency. Tasks are hits drawn from
the table (given as a file of "ipv4 mac" lines)."""
import argparse
import json
import time

import redis

p = argparse.ArgumentParser()
p.add_argument("--redis-port", type=int, required=True)
p.add_argument("--queue", default="device-lookup:tasks")
p.add_argument("--rate", type=int, required=True)
p.add_argument("--seconds", type=float, required=True)
p.add_argument("--devices", required=True)
args = p.parse_args()

devices = [line.split() for line in open(args.devices) if line.strip()]
r = redis.Redis(port=args.redis_port)
total = int(args.rate * args.seconds)
start = time.monotonic()
sent = 0
while sent < total:
    due = min(total, int((time.monotonic() - start) * args.rate) + 1)
    if due > sent:
        pipe = r.pipeline(transaction=False)
        for n in range(sent, due):
            ip, mac = devices[n % len(devices)]
            pipe.lpush(args.queue, json.dumps({"id": "lat-%d-%d" % (n, time.time_ns()), "ipv4": ip, "mac": mac}))
        pipe.execute()
        sent = due
    time.sleep(0.01)
print(json.dumps({"offered": sent, "seconds": round(time.monotonic() - start, 3)}))
