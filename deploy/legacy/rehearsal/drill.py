#!/usr/bin/env python3
"""The rehearsal's checks and failover drills, against the deployed stack.

Every step asserts; every wait is for a condition, with a deadline.
  1. bootstrap: failover.sh promote mysql-a; a request through nginx -> app ->
     Redis (via Sentinel) and MySQL (via the proxy) answers.
  2. Redis: the primary's service stopped; Sentinel promotes the replica and
     the app keeps counting from where it was; the old primary, started again,
     asks Sentinel and comes back as a replica of the new one.
  3. MySQL, unplanned: the writer's service stopped; writes fail; failover.sh
     promote mysql-b (the old writer does not answer: scaled to 0, fenced in
     every proxy); writes land on mysql-b; rejoin mysql-a: it comes back
     read-only, has every row written while it was down, and the fence lifts.
  4. MySQL, planned: promote mysql-a back; writes land on it; no row lost.
  5. An app task killed: requests keep being answered through nginx.
With --ops, after ops.yml is deployed: every exporter reports its server up,
and the first backups came from the pair's read-only members and are whole.
"""
import glob
import gzip
import argparse
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE  # the rehearsal's self-signed certificate
EDGE = "https://127.0.0.1"


def log(msg):
    print("drill: " + msg, file=sys.stderr, flush=True)


def get(path):
    """(status, body as dict or text) of one request through nginx."""
    try:
        with urllib.request.urlopen(EDGE + path, timeout=10, context=CTX) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read().decode(errors="replace")
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, body
    except OSError as e:
        return 0, str(e)


def wait_for(what, check, seconds):
    """Polls check() until it returns a true value; fails after the deadline."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last and last[0]:
            return last[1]
        time.sleep(0.5)
    raise AssertionError("%s: not within %d s (last: %r)" % (what, seconds, last))


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE, **kw).stdout


def visit_ok(expect=None):
    def check():
        status, body = get("/visit")
        ok = status == 200 and all(body.get(k) == v for k, v in (expect or {}).items())
        return ok, body
    return check


class Stack:
    def __init__(self, name, failover):
        self.name = name
        self.failover = failover

    def scale(self, service, n):
        sh("docker", "service", "scale", "--detach=false", "%s_%s=%d" % (self.name, service, n),
           stderr=subprocess.DEVNULL)

    def container(self, service):
        ids = sh("docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name=%s_%s"
                 % (self.name, service)).split()
        assert ids, "no running container of " + service
        return ids[0]

    def redis_role(self, service):
        out = sh("docker", "exec", self.container(service), "sh", "-c",
                 'REDISCLI_AUTH=$(cat /run/secrets/redis_password) redis-cli --no-auth-warning INFO replication')
        return dict(l.strip().split(":", 1) for l in out.splitlines() if ":" in l)

    def run_failover(self, *args):
        """Runs failover.sh, echoing its steps; returns what it printed."""
        log("failover.sh " + " ".join(args))
        p = subprocess.run([self.failover, *args], text=True, stderr=subprocess.PIPE)
        sys.stderr.write(p.stderr)
        assert p.returncode == 0, "failover.sh %s failed" % " ".join(args)
        return p.stderr

    def rows(self, node):
        out = sh("docker", "exec", self.container(node), "sh", "-c",
                 'MYSQL_PWD=$(cat /run/secrets/mysql_admin_password) '
                 'mariadb -uadmin -h127.0.0.1 -N -e "SELECT COUNT(*) FROM app.visits"')
        return int(out.strip())


def drill(stack):
    log("1. bootstrap: the first writer, then one request end to end")
    stack.run_failover("promote", "mysql-a")
    first = wait_for("a visit through nginx -> app -> Redis + MySQL",
                     visit_ok({"mysql_server_id": 1, "redis_primary": "redis-a:6379"}), 60)
    log("   answered: %s" % first)

    log("2. Redis: the primary stopped")
    stack.scale("redis-a", 0)
    after = wait_for("a visit counted by the promoted Redis replica",
                     visit_ok({"redis_primary": "redis-b:6379"}), 90)
    assert after["redis_count"] > first["redis_count"], ("the counter went back", first, after)
    log("   Sentinel promoted redis-b; the count went on: %d -> %d" % (first["redis_count"], after["redis_count"]))
    stack.scale("redis-a", 1)
    role = wait_for("redis-a back as a replica of redis-b", lambda: (
        (lambda r: (r.get("role") == "slave" and r.get("master_host") == "redis-b"
                    and r.get("master_link_status") == "up", r))(stack.redis_role("redis-a"))), 90)
    log("   redis-a rejoined as a replica: master_host=%s" % role["master_host"])

    log("3. MySQL: the writer stopped, failover by the script")
    wait_for("visits on mysql-a", visit_ok({"mysql_server_id": 1}), 30)
    stack.scale("mysql-a", 0)
    wait_for("writes failing while there is no writer", lambda: (get("/visit")[0] == 503, None), 30)
    out = stack.run_failover("promote", "mysql-b")
    # mysql-b received mysql-a's rows: the script must wait for exactly those.
    assert "to apply nothing" not in out, "failover.sh did not see what mysql-b received"
    during = [wait_for("a visit written to mysql-b", visit_ok({"mysql_server_id": 2}), 60)]
    during += [visit_ok({"mysql_server_id": 2})()[1] for _ in range(5)]
    on_b = stack.rows("mysql-b")
    log("   writes land on mysql-b (%d rows there)" % on_b)
    stack.run_failover("rejoin", "mysql-a")
    on_a = stack.rows("mysql-a")
    assert on_a == stack.rows("mysql-b") >= on_b, ("mysql-a misses rows", on_a, on_b)
    log("   mysql-a rejoined read-only and has all %d rows" % on_a)

    log("4. MySQL: planned switchover back to mysql-a")
    stack.run_failover("promote", "mysql-a")
    back = wait_for("a visit written to mysql-a", visit_ok({"mysql_server_id": 1}), 60)
    total = stack.rows("mysql-a")
    wait_for("mysql-b replicating from mysql-a", lambda: (stack.rows("mysql-b") == total, None), 30)
    log("   writes land on mysql-a again (row %d); both nodes hold %d rows" % (back["mysql_row"], total))

    log("5. an app task killed")
    sh("docker", "kill", stack.container("app"))
    for _ in range(20):
        status, body = get("/healthz")
        assert status == 200, ("a request failed with one app task down", status, body)
    log("   20 requests answered while Swarm replaced it")


def metrics(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            return r.read().decode()
    except OSError as e:
        return str(e)


def ops(stack):
    log("6. ops.yml: exporters and backups")
    for port, line in ((9100, "node_uname_info{"), (9104, "mysql_up 1"), (9105, "mysql_up 1"),
                       (9121, "redis_up 1"), (9122, "redis_up 1")):
        wait_for("port %d reporting %r" % (port, line),
                 lambda: (any(l.startswith(line) for l in metrics(port).splitlines()), None), 60)
    log("   node, mysqld (a, b) and redis (a, b) exporters report their servers up")
    dump = wait_for("a MySQL dump in /srv/legacy/backup",
                    lambda: (glob.glob("/srv/legacy/backup/mysql-*.sql.gz"),) * 2, 60)[0]
    with gzip.open(dump, "rt") as f:
        text = f.read()
    assert "CREATE TABLE `visits`" in text and "INSERT INTO `visits`" in text, "the dump misses the visits table"
    assert text.rstrip().splitlines()[-1].startswith("-- Dump completed"), "the dump is cut short"
    rdb = wait_for("a Redis snapshot in /srv/legacy/backup",
                   lambda: (glob.glob("/srv/legacy/backup/redis-*.rdb"),) * 2, 60)[0]
    with open(rdb, "rb") as f:
        assert f.read(5) == b"REDIS", "not an RDB file"
    logs = sh("docker", "service", "logs", "--raw", "%s-ops_mysql-backup" % stack.name, stderr=subprocess.STDOUT)
    logs += sh("docker", "service", "logs", "--raw", "%s-ops_redis-backup" % stack.name, stderr=subprocess.STDOUT)
    # After the drills mysql-a is the writer and redis-b the primary: the
    # backups must come from the other two.
    assert "from mysql-b" in logs and "from redis-a" in logs, ("a backup read the writer", logs)
    log("   %s (complete, with the visits table) from mysql-b; %s from redis-a"
        % (os.path.basename(dump), os.path.basename(rdb)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stack", default="legacy")
    p.add_argument("--failover")
    p.add_argument("--ops", action="store_true", help="check ops.yml's services instead of drilling")
    a = p.parse_args()
    os.environ.setdefault("STACK", a.stack)
    if a.ops:
        ops(Stack(a.stack, None))
        log("ops checks passed")
    else:
        drill(Stack(a.stack, a.failover))
        log("all drills passed")


if __name__ == "__main__":
    main()
