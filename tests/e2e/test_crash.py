"""End-to-end: SIGKILL the collector during sustained concurrent ingest.

Every event id that got a 2xx must be in the database after the automatic
restart, the restart must happen within two seconds, and the live window
must come back (it is rebuilt from SQLite, not reset to zero).  Also: a
collector that hangs (SIGSTOP) makes ingest answer 503 with Retry-After,
and SIGTERM stops the stack cleanly with everything accepted stored.
"""
import os
import signal
import sys
import threading
import time

from stack import Loader, Stack, run_tests, stop_loaders

S = None


def stored_ids():
    return {r[0] for r in S.query("SELECT id FROM events WHERE id LIKE "
                                  "'crash-%'")}


def test_sigkill_loses_no_acknowledged_event():
    """SIGKILL twice under load: every acknowledged id is stored."""
    loaders = [Loader(S, "crash-%d" % n) for n in range(6)]
    for l in loaders:
        l.start()
    time.sleep(1.5)
    restarts = []
    for _ in range(2):
        old = S.pid("collector")
        os.kill(old, signal.SIGKILL)
        t0 = time.time()
        new = old
        while time.time() - t0 < 5:
            try:
                new = S.pid("collector")
            except (OSError, ValueError):
                pass
            if new not in (None, old) and os.path.exists(
                    os.path.join(S.data, "run", "collector.sock")):
                break
            time.sleep(0.02)
        assert new != old, "collector was not restarted"
        restarts.append(time.time() - t0)
        time.sleep(1.5)
    acked, statuses = stop_loaders(loaders)
    print("    acked=%d statuses=%s restart_s=%s" % (
        len(acked), statuses, ["%.2f" % r for r in restarts]))
    assert len(acked) > 1000, statuses
    missing = set(acked) - stored_ids()
    assert not missing, "%d acknowledged events lost, e.g. %s" % (
        len(missing), sorted(missing)[:5])
    assert max(restarts) < 2.0, restarts
    assert S.wait_ready(10)


def test_live_window_comes_back():
    """After a restart the live window equals the database, not zero."""
    assert S.ingest([{"id": "err-before-restart", "provider": "openai",
                      "model": "gpt-4o", "status": 429,
                      "error_type": "rate_limit"}]).status == 200
    S.wait_second_closed()
    before = S.stats("1h")
    n = S.query("SELECT count(*) FROM events")[0][0]
    assert before["requests"] == n, (before["requests"], n)
    old = S.pid("collector")
    os.kill(old, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline:
        time.sleep(0.2)
        try:
            st = S.stats("1h")
        except AssertionError:
            continue
        if st["generation"] != before["generation"] and not st["stale"]:
            break
    assert st["generation"] != before["generation"], st
    assert st["requests"] == n, (st["requests"], n)
    assert st["totals"]["requests"] == before["totals"]["requests"], st
    # The feed came back from the database too, flags included.
    feed = S.get("/api/v1/live/feed?limit=1000").json()["requests"]
    mine = [e for e in feed if e["id"] == "err-before-restart"]
    assert mine and mine[0]["error"] is True, mine
    assert mine[0]["error_type"] == "rate_limit" and mine[0]["status"] == 429


def test_hung_collector_answers_503():
    """A collector that does not answer makes ingest 503 with Retry-After;
    it stores the events when it resumes (same ids: no duplicates)."""
    pid = S.pid("collector")
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.time()
        r = S.ingest([{"id": "hung-1", "provider": "openai",
                       "model": "gpt-4o", "input_tokens": 1}])
        took = time.time() - t0
        time.sleep(3.2)  # past stale_after_ms without a heartbeat
        ready = S.get("/health/ready", key=None)
        assert ready.status == 503, ready
        comp = ready.json()["components"]["collector"]
        assert comp["status"] == "down" and "heartbeat" in comp["error"], comp
        assert S.stats()["stale"] is True
    finally:
        os.kill(pid, signal.SIGCONT)
    assert r.status == 503, r
    assert "retry-after" in r.headers, r.headers
    assert took < 5, took
    assert S.wait_ready(10)
    r = S.ingest([{"id": "hung-1", "provider": "openai", "model": "gpt-4o",
                   "input_tokens": 1}])
    assert r.status == 200, r
    assert S.query("SELECT count(*) FROM events WHERE id = 'hung-1'"
                   )[0][0] == 1


def wait_gone(pid, limit):
    """Seconds until pid has exited (been reaped), or None after limit."""
    t0 = time.time()
    while time.time() - t0 < limit:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return time.time() - t0
        except (FileNotFoundError, ProcessLookupError):
            # Gone between open and read: read() raises ESRCH then.
            return time.time() - t0
        time.sleep(0.005)
    return None


def test_sigterm_stops_within_a_second_and_flushes():
    """SIGTERM under load: each process exits within 1 s, and every
    acknowledged event is stored."""
    loaders = [Loader(S, "crash-%d" % (100 + n)) for n in range(4)]
    for l in loaders:
        l.start()
    time.sleep(1)
    took, pids = {}, {}
    for comp in ("collector", "api"):
        pid = pids[comp] = S.pid(comp)
        os.kill(pid, signal.SIGTERM)
        took[comp] = wait_gone(pid, 5)
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                if S.pid(comp) not in (None, pid):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        time.sleep(0.5)
    acked = set(stop_loaders(loaders)[0])
    print("    stop_s=%s acked=%d" % (took, len(acked)))
    for comp, t in took.items():
        assert t is not None and t < 1.0, (comp, t)
    # Each stopped by handling SIGTERM (exit 0), not by dying of it.
    with open(os.path.join(S.data, "log", "supervise.log")) as f:
        log = f.read()
    for comp, pid in pids.items():
        line = [l for l in log.splitlines()
                if "name=%s pid=%d status=" % (comp, pid) in l]
        assert line and "status=exit:0" in line[0], (comp, line)
    missing = acked - stored_ids()
    assert not missing, "%d acknowledged events lost" % len(missing)
    assert S.wait_ready(10)


def test_api_worker_killed_restarts():
    """A killed API process is restarted and serves again within 2 s."""
    old = S.pid("api")
    os.kill(old, signal.SIGKILL)
    t0 = time.time()
    while time.time() - t0 < 5:
        r = S.get("/api/v1/live/stats")
        if r.status == 200:
            break
        time.sleep(0.05)
    assert r.status == 200, r
    assert time.time() - t0 < 2.5, time.time() - t0


def test_overloaded_collector_answers_503_and_stores_nothing():
    """A batch that waited in the collector's queue longer than
    ingest_queue_ms is refused with 503 overloaded, not stored."""
    with Stack(sets=["ingest_queue_ms=50"]) as s:
        pid = s.pid("collector")
        result = {}

        def send():
            result["r"] = s.ingest([{"id": "busy-1", "provider": "openai",
                                     "model": "gpt-4o"}])
        os.kill(pid, signal.SIGSTOP)
        try:
            t = threading.Thread(target=send)
            t.start()
            time.sleep(0.4)
        finally:
            os.kill(pid, signal.SIGCONT)
        t.join(10)
        r = result["r"]
        assert r.status == 503, r
        assert r.json()["error"]["code"] == "overloaded", r
        assert r.headers.get("retry-after") == "1", r.headers
        assert s.query("SELECT count(*) FROM events WHERE id = 'busy-1'"
                       )[0][0] == 0
        ready = s.get("/health/ready", key=None).json()
        assert ready["ingest"]["rejected_busy"] == 1, ready
        # Once the queue is short again, the same batch goes through.
        assert s.ingest([{"id": "busy-1", "provider": "openai",
                          "model": "gpt-4o"}]).status == 200


def main():
    global S
    with Stack(sets=["ingest_timeout_ms=1500"]) as s:
        S = s
        failed = run_tests([test_sigkill_loses_no_acknowledged_event,
                            test_live_window_comes_back,
                            test_hung_collector_answers_503,
                            test_sigterm_stops_within_a_second_and_flushes,
                            test_api_worker_killed_restarts,
                            test_overloaded_collector_answers_503_and_stores_nothing],
                           s)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
