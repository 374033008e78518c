"""End-to-end: the relay's live streams through nginx, with a real
WebSocket client (tools/tt-ws, libwebsockets).  A stream starts with a
snapshot and then carries one frame a second with that second's stats and
new feed entries; sequence numbers resume a stream or fall back to a
snapshot; topics and provider filters narrow it; a key sees only its
workspace; no key, a bad key or a bad token is refused and a token from
POST /api/v1/ws-token works; a reader that stops reading is cut off while
a fast one keeps receiving; the relay keeps streaming across a collector
restart; a crosstalk session streams its calls with running totals; a
peer that answers pings keeps an idle stream, one that does not is
closed."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

from stack import BUILD, Stack, run_tests, wait_for

S = None
WS = os.path.join(BUILD, "tools", "tt-ws")


def workspace(name):
    return S.create_key("admin", workspace=name, name=name)


def ws(path, key=None, token=None, messages=None, duration=10, slow=False,
       extra=()):
    """Run tt-ws on path; (messages as dicts, close line, error line, rc)."""
    url = "ws://127.0.0.1:%d%s" % (S.port, path)
    if token is not None:
        url += ("&" if "?" in url else "?") + "token=" + token
    cmd = [WS, "--url", url, "--duration", str(duration)]
    if key is not None:
        cmd += ["--header", "Authorization: Bearer " + key]
    if messages is not None:
        cmd += ["--messages", str(messages)]
    if slow:
        cmd.append("--slow")
    cmd += list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True,
                       timeout=duration + 30)
    msgs, close, error = [], None, None
    for line in p.stdout.splitlines():
        if line.startswith("CLOSE"):
            close = line
        elif line.startswith("ERROR"):
            error = line
        elif line.strip():
            ms, text = line.split(" ", 1)
            m = json.loads(text)
            m["_recv_ms"] = int(ms)
            msgs.append(m)
    return msgs, close, error, p.returncode


def send(key, n, model="m", provider="openai", session=None, rnd=None):
    ev = []
    for i in range(n):
        e = {"provider": provider, "model": model, "input_tokens": 10,
             "output_tokens": 5, "cost_usd": 0.001, "latency_ms": 100}
        if session is not None:
            e.update(session=session, round=rnd)
        ev.append(e)
    r = S.request("POST", "/api/v1/events", body=ev, key=key)
    assert r.status in (200, 201, 202), r


def test_snapshot_then_a_frame_a_second():
    key = workspace("r-a")
    send(key, 5)
    time.sleep(1.2)
    out = {}

    def later():
        time.sleep(2.5)
        send(key, 3, model="m2")
    t = threading.Thread(target=later)
    t.start()
    msgs, close, error, rc = ws("/ws/live", key=key, messages=6,
                                duration=15)
    t.join()
    assert rc == 0 and error is None, (rc, error, close)
    assert msgs[0]["type"] == "snapshot", msgs[0]
    assert msgs[0]["stats"]["requests"] == 5, msgs[0]["stats"]
    assert len(msgs[0]["feed"]) == 5
    frames = msgs[1:]
    assert all(f["type"] == "frame" for f in frames)
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert seqs[0] == msgs[0]["seq"] + 1, (msgs[0]["seq"], seqs)
    # The three later events arrive in one frame's feed, and the stats
    # count them from then on.
    new = [e for f in frames for e in f["feed"]]
    assert [e["model"] for e in new] == ["m2"] * 3, new
    assert frames[-1]["stats"]["requests"] == 8, frames[-1]["stats"]
    # The snapshot has the breakdown; frames only when asked for.
    assert [m["model"] for m in msgs[0]["stats"]["models"]] == ["m"]
    assert "models" not in frames[-1]["stats"]
    more, _, _, _ = ws("/ws/live?topics=stats,breakdown", key=key,
                       messages=2)
    assert {m["model"] for m in more[1]["stats"]["models"]} == {"m", "m2"}
    assert "feed" not in more[1], more[1].keys()
    for f in frames:
        assert abs(f["_recv_ms"] - f["sent_ms"]) < 1500, f
    out["seq"] = seqs[-1]


def test_resume_by_seq():
    key = workspace("r-b")
    msgs, _, _, _ = ws("/ws/live", key=key, messages=3)
    last = msgs[-1]["seq"]
    time.sleep(3)
    # What was missed is still kept: frames from last + 1, no snapshot.
    again, _, _, _ = ws("/ws/live?since=%d" % last, key=key, messages=3)
    assert again[0]["type"] == "frame", again[0]
    assert again[0]["seq"] == last + 1, (last, again[0]["seq"])
    assert [m["seq"] for m in again] == [last + 1, last + 2, last + 3]
    # Too old: a fresh snapshot.
    old, _, _, _ = ws("/ws/live?since=%d" % (last - 3600), key=key,
                      messages=1)
    assert old[0]["type"] == "snapshot", old[0]


def test_topics_filters_and_workspaces():
    a, b = workspace("r-c"), workspace("r-d")
    send(a, 2, provider="openai", model="gpt")
    send(a, 2, provider="anthropic", model="claude")
    send(b, 4, provider="openai", model="other-ws")
    time.sleep(1.2)
    msgs, _, _, _ = ws("/ws/live?topics=feed&provider=anthropic", key=a,
                       messages=2)
    snap, frame = msgs[0], msgs[1]
    assert "stats" not in frame and "events" not in frame, frame
    assert {e["provider"] for e in snap["feed"]} == {"anthropic"}, snap
    msgs, _, _, _ = ws("/ws/live", key=b, messages=1)
    assert {e["model"] for e in msgs[0]["feed"]} == {"other-ws"}
    assert msgs[0]["stats"]["requests"] == 4
    # A filter narrows the breakdown when asked for, and adds none when not.
    msgs, _, _, _ = ws("/ws/live?topics=stats&provider=openai", key=a,
                       messages=2)
    assert "providers" not in msgs[1]["stats"], msgs[1]["stats"]
    msgs, _, _, _ = ws("/ws/live?topics=stats,breakdown&provider=openai",
                       key=a, messages=2)
    provs = [p["provider"] for p in msgs[1]["stats"]["providers"]]
    assert provs == ["openai"], msgs[1]["stats"]["providers"]


def test_authentication():
    _, _, error, rc = ws("/ws/live", messages=1, duration=5)
    assert rc == 2 and error is not None, (rc, error)
    _, _, error, rc = ws("/ws/live", key="tt_bogus", messages=1, duration=5)
    assert rc == 2, (rc, error)
    _, _, error, rc = ws("/ws/live", token="r-e.9999999999.00", messages=1,
                         duration=5)
    assert rc == 2, (rc, error)
    key = workspace("r-e")
    r = S.post("/api/v1/ws-token", {}, key=key)
    assert r.status == 200, r
    tok = r.json()["token"]
    msgs, _, error, rc = ws("/ws/live", token=tok, messages=1)
    assert rc == 0 and msgs[0]["type"] == "snapshot", (rc, error)
    # An ingest key may not watch.
    ing = S.create_key("ingest", workspace="r-e", name="ingester")
    _, _, error, rc = ws("/ws/live", key=ing, messages=1, duration=5)
    assert rc == 2, (rc, error)


def test_slow_reader_cut_off_fast_one_not():
    key = workspace("r-f")
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            send(key, 400)
            time.sleep(0.1)
    t = threading.Thread(target=traffic)
    t.start()
    try:
        slow = {}

        def slow_reader():
            t0 = time.time()
            slow.update(r=ws("/ws/live", key=key, slow=True, duration=40))
            slow["elapsed"] = time.time() - t0
        th = threading.Thread(target=slow_reader)
        th.start()
        fast, _, _, rc = ws("/ws/live", key=key, duration=25)
        th.join()
    finally:
        stop.set()
        t.join()
    # Cut off once its oldest unsent frame waited relay_queue (3) seconds,
    # after the socket buffers between it and the relay filled: its close
    # frame cannot pass the data it did not read, so it sees the
    # connection end (when it reads at last); the relay says why, and
    # closed it while the fast one went on.
    _, close, _, _ = slow["r"]
    assert close is not None, "the slow reader was not closed"
    with open(os.path.join(S.data, "log", "relay.log")) as f:
        log = f.read()
    assert "client too slow: closed" in log, "no 'too slow' in relay.log"
    cut = [line for line in log.splitlines() if "too slow" in line][0]
    assert "workspace=r-f" in cut, cut
    seqs = [m["seq"] for m in fast if m["type"] == "frame"]
    assert len(seqs) >= 20, len(seqs)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


def test_survives_collector_restart():
    key = workspace("r-g")
    result = {}
    th = threading.Thread(target=lambda: result.update(r=ws(
        "/ws/live", key=key, duration=14)))
    th.start()
    time.sleep(3)
    os.kill(S.pid("collector"), signal.SIGKILL)
    th.join()
    msgs = result["r"][0]
    gens = [m["generation"] for m in msgs]
    assert len(set(gens)) == 2, gens
    after = [m for m in msgs if m["generation"] == gens[-1]]
    assert len(after) >= 3, msgs
    seqs = [m["seq"] for m in msgs]
    assert seqs == sorted(seqs), seqs


def test_crosstalk_session():
    key = workspace("r-h")
    send(key, 2, session="s1", rnd=1)
    send(key, 1, session="s2", rnd=1)
    time.sleep(1.2)

    def later():
        time.sleep(2)
        send(key, 3, session="s1", rnd=2)
    t = threading.Thread(target=later)
    t.start()
    msgs, _, _, _ = ws("/ws/crosstalk/s1", key=key, messages=2, duration=12)
    t.join()
    snap, calls = msgs[0], msgs[1]
    assert snap["type"] == "snapshot" and len(snap["calls"]) == 2, snap
    assert snap["rounds"]["1"]["calls"] == 2, snap
    assert calls["type"] == "calls" and len(calls["calls"]) == 3, calls
    assert calls["rounds"]["2"]["calls"] == 3
    assert calls["rounds"]["2"]["tokens"] == 45, calls["rounds"]
    assert calls["rounds"]["1"]["calls"] == 2


def test_crosstalk_counts_each_call_once():
    # Calls that reach the feed after a second closed but before the
    # stream starts are in its snapshot, and must not come again in the
    # next "calls" message (they once did, doubling the running totals).
    # Connecting 0.3 s after sending lands in that gap most of the time;
    # three sessions make a miss of the bug unlikely.
    key = workspace("r-k")
    for n in range(3):
        sid = "once%d" % n
        send(key, 2, session=sid, rnd=1)
        time.sleep(0.3)

        def later(sid=sid):
            time.sleep(2)
            send(key, 1, session=sid, rnd=2)
        t = threading.Thread(target=later)
        t.start()
        # The snapshot and the calls after it: two or three messages.
        msgs, _, _, _ = ws("/ws/crosstalk/" + sid, key=key, messages=3,
                           duration=5)
        t.join()
        ids = [c["id"] for m in msgs for c in m["calls"]]
        assert len(ids) == len(set(ids)) == 3, msgs
        last = msgs[-1]["rounds"]
        assert last["1"]["calls"] == 2 and last["2"]["calls"] == 1, last


def test_keepalive():
    # relay_ping=1 here: a stream silent for a second is pinged, one silent
    # for two is closed.  tt-ws answers pings (as browsers do) and keeps its
    # idle stream; a --slow one never answers and is closed (1008 "no
    # pong"), by itself.
    key = workspace("r-i")
    res = {}
    th = threading.Thread(target=lambda: res.update(r=ws(
        "/ws/crosstalk/idle", key=key, duration=8, slow=True)))
    th.start()
    msgs, close, err, rc = ws("/ws/crosstalk/idle", key=key, duration=7)
    th.join()
    assert err is None and close is None, (close, err)
    assert [m["type"] for m in msgs] == ["snapshot"], msgs
    _, slow_close, _, _ = res["r"]
    assert slow_close == "CLOSE 1008 no pong", slow_close
    with open(os.path.join(S.data, "log", "relay.log")) as f:
        silent = [line for line in f if "client silent: closed" in line]
    assert len(silent) == 1 and "workspace=r-i" in silent[0], silent
    # ... and /metrics counts it (relay.stats is written each second).
    def counted():
        r = S.get("/metrics", key=key)
        assert r.status == 200, r
        return "\ntokentap_relay_silent_closed_total 1\n" in r.body.decode()
    wait_for(counted, timeout=5)


def main():
    global S
    with Stack(sets=["relay_queue=3"]) as s:
        S = s
        failed = run_tests([test_snapshot_then_a_frame_a_second,
                            test_resume_by_seq,
                            test_topics_filters_and_workspaces,
                            test_authentication,
                            test_slow_reader_cut_off_fast_one_not,
                            test_survives_collector_restart,
                            test_crosstalk_session,
                            test_crosstalk_counts_each_call_once], s)
    # Pings once a second: a stack of its own (a --slow reader would be
    # closed for its silence before it could fall behind).
    with Stack(sets=["relay_ping=1"]) as s:
        S = s
        failed += run_tests([test_keepalive], s)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
