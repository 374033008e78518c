"""A private tokentap stack for end-to-end tests, driven like a client.

Stack() picks a free loopback port and a fresh data directory (so its own
shm name and sockets), starts everything with `tokentap up -d`, and talks
to it only through nginx.  stop() runs `tokentap down`; on failure the
component logs are printed before the directory is removed.
"""
import http.client
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback

SRC = os.environ.get("TT_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("TT_BUILDDIR") or SRC


def free_port():
    """Return a TCP port on 127.0.0.1 that is free right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Response:
    """An HTTP answer: status, headers (lower-case names) and body."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


class Stack:
    """One private stack; use as a context manager."""

    def __init__(self, sets=(), demo=False):
        self.port = free_port()
        self.data = tempfile.mkdtemp(prefix="tt-e2e-")
        self.sets = list(sets)
        self.demo = demo
        self.admin_key = None

    def tokentap(self, *args, check=True, timeout=120):
        """Run the tokentap script for this stack and return its result."""
        env = dict(os.environ, TT_NO_SETUP="1", TT_SRCDIR=SRC,
                   TT_BUILDDIR=BUILD)
        cmd = [os.path.join(SRC, "tokentap")] + list(args)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s\n%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def start(self):
        args = ["up", "-d", "--port", str(self.port), "--data", self.data]
        for s in self.sets:
            args += ["--set", s]
        if self.demo:
            args.append("--demo")
        r = self.tokentap(*args)
        self.up_output = r.stdout
        with open(os.path.join(self.data, "admin.key")) as f:
            self.admin_key = f.read().strip()
        return self

    def stop(self):
        self.tokentap("down", "--data", self.data, check=False)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.dump_logs()
            self.stop()
            raise

    def __exit__(self, et, ev, tb):
        if et is not None:
            self.dump_logs()
        self.stop()
        if et is None:
            shutil.rmtree(self.data, ignore_errors=True)
        return False

    def dump_logs(self):
        """Print the tail of every component log (after a failure)."""
        logdir = os.path.join(self.data, "log")
        if not os.path.isdir(logdir):
            return
        for name in sorted(os.listdir(logdir)):
            path = os.path.join(logdir, name)
            with open(path, errors="replace") as f:
                lines = f.readlines()[-40:]
            print("---- %s ----" % name)
            sys.stdout.writelines(lines)

    # ---- HTTP through nginx ----

    def request(self, method, path, body=None, key="admin", headers=None,
                timeout=30):
        """Send one request; key is "admin", None, or a key string."""
        h = dict(headers or {})
        if key == "admin":
            key = self.admin_key
        if key is not None:
            h["Authorization"] = "Bearer " + key
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        c = http.client.HTTPConnection("127.0.0.1", self.port,
                                       timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return Response(r.status, {k.lower(): v for k, v in
                                       r.getheaders()}, data)
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body=body, **kw)

    def ingest(self, events, key="admin"):
        return self.post("/api/v1/events", events, key=key)

    def send_alike(self, key, model, n, status=200):
        """Ingest n alike openai events of model (10 input and 5 output
        tokens, 100 ms, the given status) as key; assert it is accepted."""
        ev = [{"provider": "openai", "model": model, "input_tokens": 10,
               "output_tokens": 5, "status": status, "latency_ms": 100}
              for _ in range(n)]
        r = self.ingest(ev, key=key)
        assert r.status in (200, 201, 202), r

    def stats(self, window="1m", key="admin"):
        r = self.get("/api/v1/live/stats?window=" + window, key=key)
        assert r.status == 200, r
        return r.json()

    def wait_second_closed(self):
        """Wait until the collector closed the current second."""
        time.sleep(1.2 - (time.time() % 1.0) + 0.05)

    def create_key(self, role, workspace="default", name="test"):
        r = self.post("/api/v1/keys", {"role": role, "workspace": workspace,
                                       "name": name})
        assert r.status == 201, r
        return r.json()["key"]

    # ---- the database, read-only, as the tests' ground truth ----

    def db(self):
        path = os.path.join(self.data, "tokentap.db")
        return sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)

    def query(self, sql, args=()):
        with self.db() as con:
            return con.execute(sql, args).fetchall()

    def pid(self, component):
        """The component's pid, or None while it has none (restarting)."""
        try:
            with open(os.path.join(self.data, "run",
                                   component + ".pid")) as f:
                return int(f.read().strip())
        except (FileNotFoundError, ValueError):
            return None

    def wait_ready(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.get("/health/ready", key=None).status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False


class Loader(threading.Thread):
    """Posts batches of unique events (ids PREFIX-N) to stack as fast as it
    can until stopped, recording the ids of every batch answered 2xx."""

    def __init__(self, stack, prefix, batch=20):
        super().__init__(daemon=True)
        self.stack = stack
        self.prefix = prefix
        self.batch = batch
        self.acked = []
        self.statuses = {}
        self.stop = False

    def run(self):
        seq = 0
        conn = None
        while not self.stop:
            ids = ["%s-%d" % (self.prefix, seq + i)
                   for i in range(self.batch)]
            seq += self.batch
            body = json.dumps([{"id": i, "provider": "openai",
                                "model": "gpt-4o-mini", "input_tokens": 10,
                                "output_tokens": 5, "latency_ms": 100}
                               for i in ids])
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(
                        "127.0.0.1", self.stack.port, timeout=30)
                conn.request("POST", "/api/v1/events", body=body, headers={
                    "Authorization": "Bearer " + self.stack.admin_key,
                    "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
                if 200 <= r.status < 300:
                    self.acked.extend(ids)
            except (OSError, http.client.HTTPException):
                self.statuses["conn"] = self.statuses.get("conn", 0) + 1
                conn = None
                time.sleep(0.01)


def stop_loaders(loaders):
    """Stop and join the loaders; return (acknowledged ids in order, HTTP
    statuses counted over all of them)."""
    for l in loaders:
        l.stop = True
    for l in loaders:
        l.join(30)
    statuses = {}
    for l in loaders:
        for k, v in l.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    return [i for l in loaders for i in l.acked], statuses


def wait_for(pred, timeout=15, step=0.1):
    """Call pred until it returns something true (returned), or raise
    AssertionError after timeout seconds."""
    end = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > end:
            raise AssertionError("condition not met within %ss" % timeout)
        time.sleep(step)


def run_tests(tests, stack=None):
    """Run test functions, print ok/FAIL per test and the closing count;
    return the number of failures (printing the stack's logs if any)."""
    failed = 0
    for t in tests:
        start = time.time()
        try:
            t()
            print("  ok   %s (%.1fs)" % (t.__name__, time.time() - start))
        except Exception:
            failed += 1
            print("  FAIL %s (%.1fs)" % (t.__name__, time.time() - start))
            traceback.print_exc(file=sys.stdout)
    if failed and stack is not None:
        stack.dump_logs()
    print("%d passed, %d failed" % (len(tests) - failed, failed))
    return failed
