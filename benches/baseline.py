"""The straightforward way, for comparison: N threads, each takes one task
with BRPOP, runs one ClickHouse query for it, POSTs one paste, and appends
one line (flushed, not fsynced: generous to the baseline). Stops when the
queue has been empty for a second; prints tasks/s as JSON."""
import argparse
import http.client
import ipaddress
import json
import threading
import time
import urllib.parse

import redis

p = argparse.ArgumentParser()
p.add_argument("--redis-port", type=int, required=True)
p.add_argument("--ch-port", type=int, required=True)
p.add_argument("--sink-port", type=int, required=True)
p.add_argument("--queue", default="device-lookup:tasks")
p.add_argument("--threads", type=int, default=5)
p.add_argument("--out", required=True)
args = p.parse_args()

lock = threading.Lock()
out = open(args.out, "a")
done = [0]
last = [time.time()]


def mac_to_int(s):
    return int(s.replace(":", "").replace("-", "").replace(".", ""), 16)


def worker():
    r = redis.Redis(port=args.redis_port)
    ch = http.client.HTTPConnection("127.0.0.1", args.ch_port)
    sink = http.client.HTTPConnection("127.0.0.1", args.sink_port)
    while True:
        item = r.brpop(args.queue, timeout=1)
        if item is None:
            return
        try:
            task = json.loads(item[1])
            ip = int(ipaddress.IPv4Address(task["ipv4"]))
            mac = mac_to_int(task["mac"])
        except Exception:
            continue
        q = ("SELECT username FROM devices.users WHERE ipv4 = %d AND mac = %d "
             "ORDER BY updated_at DESC LIMIT 1" % (ip, mac))
        ch.request("POST", "/", q)
        username = ch.getresponse().read().decode().strip()
        if username:
            doc = json.dumps({"id": task["id"], "ipv4": task["ipv4"], "mac": task["mac"], "username": username})
            body = urllib.parse.urlencode({"api_option": "paste", "api_paste_code": doc})
            sink.request("POST", "/api/api_post.php", body, {"Content-Type": "application/x-www-form-urlencoded"})
            url = sink.getresponse().read().decode().strip()
            with lock:
                out.write(json.dumps({"id": task["id"], "url": url}) + "\n")
                out.flush()
        with lock:
            done[0] += 1
            last[0] = time.time()


start = time.time()
threads = [threading.Thread(target=worker) for _ in range(args.threads)]
for t in threads:
    t.start()
for t in threads:
    t.join()
took = last[0] - start
print(json.dumps({"stage": "baseline", "items": done[0], "seconds": round(took, 3), "per_sec": round(done[0] / took)}))
