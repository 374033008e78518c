"""End-to-end: budgets.  PUT/GET of the declarative budget set with its
validation, status numbers recomputed by brute force from the events sent
(explicit cost_usd), each threshold crossing recorded and published to the
event ring once per period even across a collector SIGKILL, the status
read from the rollups when the live segment is gone, daily history with
month-to-date, CSV, and workspace separation.  Every test works in a
workspace of its own, so their spends never mix."""
import csv
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

from stack import BUILD, Stack, run_tests

S = None
DAY = 86400000


def period_bounds(period, ms):
    """The UTC day or month holding ms, as [start, end) epoch ms."""
    day = ms - ms % DAY
    if period == "day":
        return day, day + DAY
    d = datetime.fromtimestamp(ms / 1000, timezone.utc)
    start = datetime(d.year, d.month, 1, tzinfo=timezone.utc)
    end = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1,
                   tzinfo=timezone.utc)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def nusd(usd):
    return int(round(usd * 1e9))


def in_scope(b, e):
    return (b.get("provider") in (None, e["provider"]) and
            b.get("model") in (None, e["model"]))


def spend_of(b, events, now):
    """Brute force: nano-USD of events in b's current period and scope."""
    lo, hi = period_bounds(b["period"], now)
    return sum(nusd(e["cost_usd"]) for e in events
               if lo <= e["ts"] < hi and in_scope(b, e))


def workspace(name):
    """An admin key of a fresh workspace."""
    return S.create_key("admin", workspace=name, name=name)


def put(budgets, key):
    return S.request("PUT", "/api/v1/budgets", body={"budgets": budgets},
                     key=key)


def ring(kind="budget"):
    """The event ring's entries (tt-ctl ring), oldest first."""
    r = subprocess.run([os.path.join(BUILD, "collector", "tt-ctl"), "--data",
                        S.data, "ring", "--type", kind],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def crossings(budget_id):
    return S.query("SELECT threshold, period_start_ms, ts_ms, spend_nusd "
                   "FROM budget_crossings WHERE budget = ? ORDER BY "
                   "threshold", (budget_id,))


def wait_for(pred, timeout=5):
    """Poll pred until it returns something true (failures count as
    false while the time lasts); return its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = pred()
            if v:
                return v
        except (OSError, ValueError, AssertionError):
            pass
        time.sleep(0.05)
    return pred()


def avoid_midnight():
    """Periods are UTC days: keep every test on one side of midnight."""
    left = DAY - int(time.time() * 1000) % DAY
    if left < 120000:
        time.sleep(left / 1000 + 1)


def status(key):
    r = S.get("/api/v1/budgets/status", key=key)
    assert r.status == 200, r
    return r.json()


def restart_collector():
    """SIGKILL the collector and wait for its successor to serve."""
    old = S.pid("collector")
    os.kill(old, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            if S.pid("collector") != old and S.wait_ready(1):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError("collector was not restarted")


def test_put_get_and_validation():
    """PUT replaces the set declaratively; bad input is a 400 naming the
    field and changes nothing."""
    key = workspace("bt-put")
    want = [{"period": "day", "limit_usd": 50},
            {"period": "month", "limit_usd": 1000.5, "provider": "openai",
             "model": "gpt-4o", "thresholds": [100, 50]}]
    r = put(want, key)
    assert r.status == 200, r
    body = r.json()
    assert (body["created"], body["updated"], body["unchanged"],
            body["deleted"]) == (2, 0, 0, 0), body
    got = S.get("/api/v1/budgets", key=key).json()["budgets"]
    assert [b["period"] for b in got] == ["day", "month"], got
    assert got[0]["scope"] == {"provider": None, "model": None}, got
    assert got[0]["thresholds"] == [80, 95, 100], got
    assert got[1]["scope"] == {"provider": "openai", "model": "gpt-4o"}
    assert got[1]["thresholds"] == [50, 100] and \
        got[1]["limit_usd"] == 1000.5, got
    # Idempotent: the same set again changes nothing, ids included.
    r = put(want, key)
    assert r.json()["unchanged"] == 2, r
    again = S.get("/api/v1/budgets", key=key).json()["budgets"]
    assert again == got, (again, got)
    # One changed, one dropped, one new.
    r = put([{"period": "day", "limit_usd": 60},
             {"period": "day", "limit_usd": 5, "model": "m"}], key)
    b = r.json()
    assert (b["created"], b["updated"], b["unchanged"], b["deleted"]) == \
        (1, 1, 0, 1), b
    assert b["budgets"][0]["id"] == got[0]["id"], b
    before = S.get("/api/v1/budgets", key=key).json()
    bad = [
        ({"budgets": [{"limit_usd": 1}]}, "budgets[0].period"),
        ({"budgets": [{"period": "week", "limit_usd": 1}]},
         "budgets[0].period"),
        ({"budgets": [{"period": "day"}]}, "budgets[0].limit_usd"),
        ({"budgets": [{"period": "day", "limit_usd": 0}]},
         "budgets[0].limit_usd"),
        ({"budgets": [{"period": "day", "limit_usd": "5"}]},
         "budgets[0].limit_usd"),
        ({"budgets": [{"period": "day", "limit_usd": 1e10}]},
         "budgets[0].limit_usd"),
        ({"budgets": [{"period": "day", "limit_usd": 1, "provider": ""}]},
         "budgets[0].provider"),
        ({"budgets": [{"period": "day", "limit_usd": 1, "model": 7}]},
         "budgets[0].model"),
        ({"budgets": [{"period": "day", "limit_usd": 1,
                       "thresholds": [80, 80.5]}]},
         "budgets[0].thresholds[1]"),
        ({"budgets": [{"period": "day", "limit_usd": 1,
                       "thresholds": [80, 80]}]}, "budgets[0].thresholds"),
        ({"budgets": [{"period": "day", "limit_usd": 1,
                       "thresholds": []}]}, "budgets[0].thresholds"),
        ({"budgets": [{"period": "day", "limit_usd": 1,
                       "thresholds": [0]}]}, "budgets[0].thresholds[0]"),
        ({"budgets": [{"period": "day", "limit_usd": 1, "colour": 1}]},
         "budgets[0].colour"),
        ({"budgets": [{"period": "day", "limit_usd": 1},
                      {"period": "day", "limit_usd": 2}]}, "budgets[1]"),
        ({"budgets": [{"period": "day", "limit_usd": 1}, 5]}, "budgets[1]"),
        ({"budgets": {}}, "budgets"),
        ({"budget": []}, "budget"),
        ({}, "budgets"),
    ]
    for body, field in bad:
        r = S.request("PUT", "/api/v1/budgets", body=body, key=key)
        assert r.status == 400, (body, r)
        err = r.json()["error"]
        assert err["field"] == field, (body, err)
    r = S.request("PUT", "/api/v1/budgets",
                  body={"budgets": [{"period": "week", "limit_usd": 1}]},
                  key=key)
    assert '"week"' in r.json()["error"]["message"], r
    r = S.request("PUT", "/api/v1/budgets", body="[]", key=key,
                  headers={"Content-Type": "text/plain"})
    assert r.status == 415, r
    reader = S.create_key("read", workspace="bt-put")
    assert S.request("PUT", "/api/v1/budgets", body={"budgets": []},
                     key=reader).status == 403
    assert S.get("/api/v1/budgets", key=reader).json() == before
    assert S.get("/api/v1/budgets?x=1", key=key).status == 400
    # An empty set deletes every budget.
    assert put([], key).json()["deleted"] == 2
    assert S.get("/api/v1/budgets", key=key).json()["budgets"] == []


def make_events(rnd, prefix, now, n, days_back=3):
    out = []
    for i in range(n):
        back = rnd.choice([0, 0, 0, 1, days_back]) * DAY
        out.append({"id": "%s-%d" % (prefix, i),
                    "ts": now - back - rnd.randint(0, 600000),
                    "provider": rnd.choice(["openai", "anthropic"]),
                    "model": rnd.choice(["gpt-4o", "m-b"]),
                    "input_tokens": rnd.randint(1, 100),
                    "cost_usd": rnd.randint(1, 900000) / 1e6})
    return out


BUDGETS = [{"period": "day", "limit_usd": 20},
           {"period": "day", "limit_usd": 5, "provider": "openai",
            "thresholds": [50, 100]},
           {"period": "month", "limit_usd": 100, "model": "gpt-4o"},
           {"period": "month", "limit_usd": 30, "provider": "anthropic",
            "model": "m-b", "thresholds": [10, 20, 30, 200]}]


def check_status(st, budgets, events, source):
    """Every number of a status answer against brute force."""
    as_of = int(datetime.fromisoformat(
        st["as_of"].replace("Z", "+00:00")).timestamp() * 1000)
    assert len(st["budgets"]) == len(budgets), st
    for b, got in zip(budgets, st["budgets"]):
        want = spend_of(b, events, as_of)
        lo, hi = period_bounds(b["period"], as_of)
        assert nusd(got["spend_usd"]) == want, (b, got, want)
        assert got["source"] == source, got
        limit = nusd(b["limit_usd"])
        assert abs(got["percent_used"] - want * 100 / limit) < 1e-9, got
        assert nusd(got["remaining_usd"]) == max(limit - want, 0), got
        proj = want / 1e9 * (hi - lo) / (as_of - lo)
        assert abs(got["projected_usd"] - proj) <= 1e-9 * max(proj, 1), \
            (got, proj)
        assert got["period_start"].startswith(
            datetime.fromtimestamp(lo / 1000, timezone.utc).strftime(
                "%Y-%m-%dT00:00:00")), got
        thr = b.get("thresholds", [80, 95, 100])
        assert [t["percent"] for t in got["thresholds"]] == sorted(thr)
        for t in got["thresholds"]:
            assert t["crossed"] == (want * 100 >= t["percent"] * limit), \
                (b, t, want)


def test_status_exact():
    """Spend, percent, remaining and projection equal brute force; events
    of other periods, scopes and workspaces do not count."""
    avoid_midnight()
    key = workspace("bt-status")
    other = workspace("bt-status-other")
    assert put(BUDGETS, key).status == 200
    assert put(BUDGETS, other).status == 200
    now = int(time.time() * 1000)
    rnd = random.Random(5)
    mine = make_events(rnd, "st", now, 300)
    theirs = make_events(rnd, "st-o", now, 100)
    for i in range(0, len(mine), 100):
        assert S.ingest(mine[i:i + 100], key=key).status == 200
    assert S.ingest(theirs, key=other).status == 200
    # At once (the live slots change with the commit) and later.
    check_status(status(key), BUDGETS, mine, "live")
    check_status(status(other), BUDGETS, theirs, "live")
    time.sleep(1.2)
    check_status(status(key), BUDGETS, mine, "live")


def test_crossing_once_across_restart():
    """A threshold crossing is recorded and published once per period:
    not again after a SIGKILL of the collector, nor after the set is sent
    again; the next threshold still fires once."""
    avoid_midnight()
    key = workspace("bt-cross")
    r = put([{"period": "day", "limit_usd": 1, "provider": "xprov",
              "thresholds": [50, 80, 100]}], key)
    bid = r.json()["budgets"][0]["id"]
    now = int(time.time() * 1000)
    ev = [{"id": "x-1", "provider": "xprov", "model": "m", "ts": now,
           "cost_usd": 0.3},
          {"id": "x-2", "provider": "xprov", "model": "m", "ts": now,
           "cost_usd": 0.3},
          {"id": "x-3", "provider": "other", "model": "m", "ts": now,
           "cost_usd": 5}]
    assert S.ingest(ev, key=key).status == 200
    rows = wait_for(lambda: crossings(bid))
    assert [t for t, *_ in rows] == [50], rows
    assert rows[0][3] == nusd(0.6), rows
    mine = wait_for(lambda: [e for e in ring()
                             if e["event"]["budget"] == bid])
    assert len(mine) == 1, mine
    ev0 = mine[0]["event"]
    assert mine[0]["workspace"] == "bt-cross", mine
    assert ev0["type"] == "budget.threshold_crossed", ev0
    assert ev0["threshold"] == 50 and ev0["period"] == "day", ev0
    assert ev0["scope"] == {"provider": "xprov", "model": None}, ev0
    assert nusd(ev0["spend_usd"]) == nusd(0.6), ev0
    assert ev0["limit_usd"] == 1 and ev0["workspace"] == "bt-cross", ev0
    lo, _ = period_bounds("day", now)
    assert ev0["period_start"] == datetime.fromtimestamp(
        lo / 1000, timezone.utc).strftime("%Y-%m-%dT00:00:00.000Z"), ev0
    st = status(key)["budgets"][0]
    assert [t["crossed"] for t in st["thresholds"]] == [True, False, False]
    assert st["thresholds"][0]["crossed_at"] is not None, st

    restart_collector()
    time.sleep(1.5)  # past a tick of the new collector
    assert crossings(bid) == rows, (crossings(bid), rows)
    assert not [e for e in ring() if e["event"]["budget"] == bid]
    st = status(key)["budgets"][0]
    assert nusd(st["spend_usd"]) == nusd(0.6) and st["source"] == "live"
    assert put([{"period": "day", "limit_usd": 1, "provider": "xprov",
                 "thresholds": [50, 80, 100]}], key).json()["unchanged"] == 1
    time.sleep(1.2)
    assert not [e for e in ring() if e["event"]["budget"] == bid]

    assert S.ingest([{"id": "x-4", "provider": "xprov", "model": "m",
                      "ts": now, "cost_usd": 0.25}], key=key).status == 200
    rows2 = wait_for(lambda: len(crossings(bid)) == 2 and crossings(bid))
    assert [t for t, *_ in rows2] == [50, 80] and rows2[0] == rows[0], rows2
    mine = wait_for(lambda: [e for e in ring()
                             if e["event"]["budget"] == bid])
    assert [e["event"]["threshold"] for e in mine] == [80], mine
    # A new limit re-arms the thresholds it now passes.
    r = put([{"period": "day", "limit_usd": 0.5, "provider": "xprov",
              "thresholds": [50, 80, 100]}], key)
    assert r.json()["updated"] == 1, r
    mine = wait_for(lambda: len([e for e in ring()
                                 if e["event"]["budget"] == bid]) == 4 and
                    [e for e in ring() if e["event"]["budget"] == bid])
    assert [e["event"]["threshold"] for e in mine] == [80, 50, 80, 100], mine
    assert mine[-1]["event"]["limit_usd"] == 0.5, mine


def test_history_exact_and_csv():
    """Spend per UTC day and month to date equal brute force; CSV carries
    the same numbers."""
    avoid_midnight()
    key = workspace("bt-hist")
    assert put(BUDGETS, key).status == 200
    now = int(time.time() * 1000)
    rnd = random.Random(9)
    events = make_events(rnd, "h", now, 200, days_back=40)
    for i in range(0, len(events), 100):
        assert S.ingest(events[i:i + 100], key=key).status == 200
    r = S.get("/api/v1/budgets/history?range=30d", key=key)
    assert r.status == 200, r
    body = r.json()
    first = (now - 30 * DAY) - (now - 30 * DAY) % DAY
    days = [first + k * DAY for k in range((now - first) // DAY + 1)]
    by_day = {}
    for b, got in zip(BUDGETS, body["budgets"]):
        assert [d["date"] for d in got["days"]] == [
            datetime.fromtimestamp(d / 1000, timezone.utc).strftime(
                "%Y-%m-%d") for d in days], got["days"][:2]
        for d, row in zip(days, got["days"]):
            want = sum(nusd(e["cost_usd"]) for e in events
                       if d <= e["ts"] < d + DAY and in_scope(b, e))
            assert nusd(row["spend_usd"]) == want, (b, row, want)
            by_day[(got["id"], row["date"])] = want
            if b["period"] == "month":
                ms, _ = period_bounds("month", d)
                mtd = sum(nusd(e["cost_usd"]) for e in events
                          if ms <= e["ts"] < d + DAY and in_scope(b, e))
                assert nusd(row["month_to_date_usd"]) == mtd, (b, row, mtd)
                assert abs(row["percent_used"] -
                           mtd * 100 / nusd(b["limit_usd"])) < 1e-9
            else:
                assert "month_to_date_usd" not in row
    # Today's history equals the status.
    st = status(key)["budgets"]
    today = datetime.fromtimestamp(now / 1000, timezone.utc).strftime(
        "%Y-%m-%d")
    for b, s in zip(BUDGETS, st):
        if b["period"] == "day":
            assert by_day[(s["id"], today)] == nusd(s["spend_usd"])
    r = S.get("/api/v1/budgets/history?range=30d&format=csv", key=key)
    assert r.status == 200 and r.headers["content-type"].startswith(
        "text/csv"), r
    assert re.search(r'attachment; filename="tokentap-budget-history-'
                     r'\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d\.csv"',
                     r.headers["content-disposition"]), r.headers
    rows = list(csv.DictReader(io.StringIO(r.body.decode())))
    assert len(rows) == len(BUDGETS) * len(days), len(rows)
    for row in rows:
        assert nusd(float(row["spend_usd"])) == \
            by_day[(int(row["budget_id"]), row["date"])], row
    one = S.get("/api/v1/budgets/history?range=7d&budget=%d" %
                body["budgets"][1]["id"], key=key).json()["budgets"]
    assert [b["id"] for b in one] == [body["budgets"][1]["id"]], one
    for q, field, code in (("range=1y", "range", 400),
                           ("from=2020-01-01T00:00:00Z", "from", 400),
                           ("budget=abc", "budget", 400),
                           ("budget=999999", "budget", 404),
                           ("format=xml", "format", 400),
                           ("limit=3", "limit", 400)):
        r = S.get("/api/v1/budgets/history?" + q, key=key)
        assert r.status == code and r.json()["error"]["field"] == field, \
            (q, r)


def test_status_from_rollups_without_live_segment():
    """With no live segment to read (collector stopped, segment removed,
    API restarted), status is computed from the rollups: same numbers."""
    avoid_midnight()
    key = workspace("bt-nolive")
    assert put(BUDGETS, key).status == 200
    now = int(time.time() * 1000)
    events = make_events(random.Random(3), "nl", now, 150)
    for i in range(0, len(events), 50):
        assert S.ingest(events[i:i + 50], key=key).status == 200
    time.sleep(0.5)
    live = status(key)
    check_status(live, BUDGETS, events, "live")
    with open(os.path.join(S.data, "log", "collector.log")) as f:
        shm = re.findall(r"shm=(\S+)", f.read())[-1]
    col, api = S.pid("collector"), S.pid("api")
    os.kill(col, signal.SIGSTOP)
    try:
        os.unlink("/dev/shm" + shm)
        os.kill(api, signal.SIGKILL)
        st = wait_for(lambda: S.pid("api") != api and
                      S.get("/api/v1/budgets/status", key=key).status == 200
                      and status(key), 10)
        check_status(st, BUDGETS, events, "rollups")
    finally:
        os.kill(col, signal.SIGKILL)  # a stopped process dies of it too
    assert S.wait_ready(10)
    st = wait_for(lambda: status(key)["budgets"][0]["source"] == "live" and
                  status(key), 10)
    check_status(st, BUDGETS, events, "live")


def main():
    global S
    with Stack() as s:
        S = s
        failed = run_tests([test_put_get_and_validation, test_status_exact,
                            test_crossing_once_across_restart,
                            test_history_exact_and_csv,
                            test_status_from_rollups_without_live_segment],
                           s)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
