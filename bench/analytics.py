#!/usr/bin/env python3
"""bench/analytics.py: latency of the analytics endpoints over a large
history, measured through nginx like a client.

    bench/analytics.py [--events N] [--days D] [--runs R] [--data DIR]

Builds a private stack whose database holds N events (default 10,000,000)
spread evenly over the last D days (default 90): 1000 users, 100 agents, 50
models of 5 providers, 3% errors, a tenth of the events in sessions.  The
events are written straight into SQLite while the stack is down; the
collector then builds the rollups from them at its next start (the same
catch-up that follows an upgrade or a crash).  Then every endpoint is asked
R times (default 30) with range=90d and a few filters, one request at a
time, and the table of P50/P95 latencies in milliseconds is printed.

With --data DIR an existing directory is reused (and kept): the database is
built only if it has no events yet.  Without it a temporary one is made and
removed at the end.
"""
import argparse
import http.client
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("TT_SRCDIR") or os.path.dirname(HERE)
BUILD = os.environ.get("TT_BUILDDIR") or SRC
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
from stack import free_port  # noqa: E402
DAY = 86400000

ENDPOINTS = [
    "usage/overview", "usage/timeseries", "usage/timeseries?group_by=model",
    "usage/distribution?by=model", "usage/distribution?by=provider",
    "usage/distribution?by=user", "usage/distribution?by=agent",
    "usage/top-users?limit=10", "cost/overview", "cost/trend",
    "cost/trend?group_by=provider", "cost/by-model", "cost/by-provider",
    "performance/overview", "performance/latency",
    "performance/throughput", "performance/errors",
    "usage/overview&provider=p1", "performance/overview&model=m7",
    "usage/overview&user=u17", "cost/by-model&agent=a5",
    "performance/latency&status=error", "usage/overview&session=s42",
]


def tokentap(data, *args):
    env = dict(os.environ, TT_NO_SETUP="1", TT_SRCDIR=SRC, TT_BUILDDIR=BUILD,
               TT_READY_TIMEOUT="7200")
    subprocess.run([os.path.join(SRC, "tokentap")] + list(args) +
                   ["--data", data], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def fill(db_path, n, days):
    """Write n events over the last days days into the stopped stack's
    database, in ts order (as they would have arrived).  The random draws
    that several columns share are MATERIALIZED: SQLite would otherwise
    draw again at each use."""
    con = sqlite3.connect(db_path)
    now = int(time.time() * 1000)
    con.execute("INSERT OR IGNORE INTO workspaces(name, created_ms) "
                "VALUES('default', ?)", (now,))
    ws = con.execute("SELECT id FROM workspaces WHERE name = 'default'"
                     ).fetchone()[0]
    step = days * DAY / n
    t0 = time.time()
    chunk = 1000000
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        con.execute("""
            WITH RECURSIVE c(x) AS (SELECT ?1 UNION ALL SELECT x + 1 FROM c
                                    WHERE x + 1 < ?2),
            r(x, m, e, s) AS MATERIALIZED (SELECT x, abs(random()) % 50,
                              abs(random()) % 100 < 3, abs(random()) % 10
                              FROM c)
            INSERT INTO events(ws, id, ts, received, provider, model,
              operation, input_tokens, output_tokens, cache_read_tokens,
              cache_write_tokens, reasoning_tokens, cost_usd, cost_source,
              latency_ms, ttft_ms, status, error_type, is_error, user, agent,
              session, round)
            SELECT ?3, 'b' || x, ?4 + CAST(x * ?5 AS INTEGER),
              ?4 + CAST(x * ?5 AS INTEGER), 'p' || (m % 5), 'm' || m, 'chat',
              abs(random()) % 4000, abs(random()) % 1000,
              abs(random()) % 500, 0, 0,
              (abs(random()) % 10000000) / 1e9, 0,
              20 + (abs(random()) % 2000000) / 100.0,
              CASE WHEN abs(random()) % 3 THEN 5 + (abs(random()) % 50000)
                   / 100.0 END,
              CASE WHEN e THEN 429 ELSE 200 END,
              CASE WHEN e THEN 'rate_limit' END, e,
              'u' || (abs(random()) % 1000), 'a' || (abs(random()) % 100),
              CASE WHEN s = 0 THEN 's' || (abs(random()) % 5000) END,
              CASE WHEN s = 0 THEN abs(random()) % 5 END
            FROM r""", (lo, hi, ws, now - days * DAY, step))
        con.commit()
        print("bench: %d events written (%.0f s)" % (hi, time.time() - t0),
              file=sys.stderr)
    con.close()


def measure(port, key, path, runs):
    """P50 and P95 in ms of runs sequential GETs of path."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    times = []
    for _ in range(runs + 2):
        t = time.perf_counter()
        c.request("GET", "/api/v1/" + path,
                  headers={"Authorization": "Bearer " + key})
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit("bench: %s answered %d: %s" % (path, r.status,
                                                           body[:200]))
        times.append((time.perf_counter() - t) * 1000)
    c.close()
    times = sorted(times[2:])  # the first two warm the caches
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    return p(0.5), p(0.95), len(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10000000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--data")
    a = ap.parse_args()
    data = a.data or tempfile.mkdtemp(prefix="tt-bench-an-")
    port = str(free_port())
    sets = ["--set", "retention_days=%d" % (a.days + 10), "--set",
            "log_level=warn"]
    try:
        tokentap(data, "up", "-d", "--port", port, *sets)
        db = os.path.join(data, "tokentap.db")
        con = sqlite3.connect(db)
        have = con.execute("SELECT count(*) FROM events").fetchone()[0]
        con.close()
        if have == 0:
            tokentap(data, "down")
            fill(db, a.events, a.days)
            t = time.time()
            # The collector builds the rollups before it is ready.
            tokentap(data, "up", "-d", "--port", port, *sets)
            print("bench: rollups built in %.0f s" % (time.time() - t),
                  file=sys.stderr)
        with open(os.path.join(data, "admin.key")) as f:
            key = f.read().strip()
        print("| endpoint (range=90d) | P50 ms | P95 ms | bytes |")
        print("|---|---|---|---|")
        for ep in ENDPOINTS:
            path, _, extra = ep.partition("&")
            sep = "&" if "?" in path else "?"
            q = path + sep + "range=%dd" % a.days + ("&" + extra if extra
                                                      else "")
            p50, p95, size = measure(int(port), key, q, a.runs)
            print("| %s | %.1f | %.1f | %d |" % (q, p50, p95, size))
            sys.stdout.flush()
    finally:
        tokentap(data, "down")
        if not a.data:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
