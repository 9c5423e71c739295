# -*- coding: utf-8 -*-
"""A small WSGI application standing for the legacy one in the rehearsal.

It uses the two paths the real service uses: Redis through Sentinel and MySQL
through the proxy. Python 2.7 only, like the service it stands for.

  /healthz  shallow: the process answers (the container health check)
  /readyz   deep: MySQL through the proxy and the Redis primary (nginx, alerts)
  /visit    one Redis INCR and one MySQL INSERT; says which servers took them
  /count    rows in MySQL, read through the proxy's writer
"""
import ConfigParser
import contextlib
import json
import os
import socket

import pymysql
import redis
from redis.sentinel import Sentinel

_settings = ConfigParser.RawConfigParser()
_settings.read(os.environ.get("APP_SETTINGS", "/run/app/settings.ini"))


def _sentinels():
    host, port = _settings.get("redis", "sentinels").rsplit(":", 1)
    # tasks.sentinel resolves to every Sentinel task: ask each, not one VIP.
    addrs = sorted(set(a[4][0] for a in socket.getaddrinfo(host, int(port), socket.AF_INET)))
    return [(a, int(port)) for a in addrs]


def _redis():
    password = _settings.get("redis", "password") or None
    if not _settings.get("redis", "sentinels"):
        # No Sentinel yet (the migration's phase 2): the legacy Redis directly.
        host = _settings.get("redis", "host")
        return redis.StrictRedis(host=host, password=password, socket_timeout=1.0), (host, 6379)
    sentinel = Sentinel(_sentinels(), socket_timeout=1.0,
                        sentinel_kwargs={"password": password, "socket_timeout": 1.0})
    name = _settings.get("redis", "service")
    return sentinel.master_for(name, password=password, socket_timeout=1.0), \
        sentinel.discover_master(name)


def _mysql():
    return pymysql.connect(host=_settings.get("mysql", "host"),
                           port=_settings.getint("mysql", "port"),
                           user=_settings.get("mysql", "user"),
                           password=_settings.get("mysql", "password"),
                           database=_settings.get("mysql", "database"),
                           connect_timeout=2, read_timeout=5, write_timeout=5,
                           autocommit=True)


@contextlib.contextmanager
def _cursor():
    """A cursor on a fresh connection through the proxy, closed after."""
    db = _mysql()
    try:
        yield db.cursor()
    finally:
        db.close()


@contextlib.contextmanager
def _visits():
    """The same, with the table the visits go to created if missing."""
    with _cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS visits ("
                    " id BIGINT AUTO_INCREMENT PRIMARY KEY,"
                    " server VARCHAR(64) NOT NULL,"
                    " at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)")
        yield cur


def _visit():
    r, (rhost, rport) = _redis()
    count = r.incr("visits")
    with _visits() as cur:
        cur.execute("SELECT @@hostname, @@server_id")
        host, server_id = cur.fetchone()
        cur.execute("INSERT INTO visits (server) VALUES (%s)", ("%s/%s" % (host, server_id),))
        row = cur.lastrowid
    return {"redis_count": count, "redis_primary": "%s:%s" % (rhost, rport),
            "mysql_row": row, "mysql_server_id": server_id}


def _count():
    with _visits() as cur:
        cur.execute("SELECT COUNT(*), @@server_id FROM visits")
        n, server_id = cur.fetchone()
    return {"rows": n, "mysql_server_id": server_id}


def _ready():
    r, _ = _redis()
    r.ping()
    with _cursor() as cur:
        cur.execute("SELECT 1")
    return {"ready": True}


ROUTES = {"/visit": _visit, "/count": _count, "/readyz": _ready}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/healthz":
        status, body = "200 OK", {"ok": True}
    elif path in ROUTES:
        try:
            status, body = "200 OK", ROUTES[path]()
        except Exception as e:  # a dependency is down: say so, do not crash
            status, body = "503 Service Unavailable", {"error": "%s: %s" % (type(e).__name__, e)}
    else:
        status, body = "404 Not Found", {"error": "no route"}
    data = json.dumps(body)
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data)))])
    return [data]
