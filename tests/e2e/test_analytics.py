"""End-to-end: the analytics endpoints (usage, cost, performance) compared
with a brute-force computation over the events sent.

Randomized events (seeded) spread over the last three days, many of them
right on minute, hour and day boundaries, go to two workspaces (the same
ids in both).  Every endpoint is then asked over windows whose from/to
carry +05:30 and -08:00 offsets and unaligned seconds, with every filter
and bucket, as JSON and (some) as CSV: counts, tokens and cost must be
exact, percentiles within the histogram's 1%.  The answers must be exact
at once after an ingest (the rollups lag by up to a second) and after the
collector is SIGKILLed.  Bad parameters answer 400 naming the parameter.
"""
import csv
import io
import math
import os
import random
import signal
import sys
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from stack import Loader, Stack, run_tests, stop_loaders

S = None
OTHER = None  # admin key of workspace "other"
EVENTS = {"default": [], "other": []}  # events as sent, with "nusd"
NOW_MS = int(time.time() * 1000)
MIN, HOUR, DAY = 60000, 3600000, 86400000
BUCKETS = {"1m": MIN, "5m": 5 * MIN, "1h": HOUR, "1d": DAY}
TOK = ["input", "output", "cache_read", "cache_write", "reasoning"]
DIMS = {"provider": ("provider",), "model": ("provider", "model"),
        "agent": ("agent",), "user": ("user",)}


# ---- the events ----

def make_events(rnd, n, prefix, span_ms):
    """n random events, ts within the last span_ms, a third of them on or
    next to a minute, hour or day boundary."""
    out = []
    for i in range(n):
        ts = NOW_MS - 5000 - rnd.randint(0, span_ms)
        if rnd.random() < 0.35:
            unit = rnd.choice([MIN, HOUR, DAY])
            ts = ts - ts % unit + rnd.choice([0, 0, -1, 1, 999, -1000])
        e = {"id": "%s-%05d" % (prefix, i), "ts": ts,
             "provider": rnd.choice(["openai", "anthropic", "mistral_ai"]),
             "input_tokens": rnd.randint(0, 5000),
             "output_tokens": rnd.randint(0, 2000)}
        e["model"] = rnd.choice({
            "openai": ["gpt-4o", "gpt-4o-mini"],
            "anthropic": ["claude-3-5-sonnet-20241022", "claude-3-haiku"],
            "mistral_ai": ["mistral-large-latest"]}[e["provider"]])
        if rnd.random() < 0.4:
            e["cache_read_tokens"] = rnd.randint(0, 800)
        if rnd.random() < 0.2:
            e["cache_write_tokens"] = rnd.randint(0, 300)
        if rnd.random() < 0.3:
            e["reasoning_tokens"] = rnd.randint(0, e["output_tokens"])
        if rnd.random() < 0.6:
            e["cost_usd"] = rnd.randint(0, 5 * 10**7) / 1e9
        if rnd.random() < 0.85:
            e["latency_ms"] = round(rnd.uniform(1.0, 30000.0), 3)
            if rnd.random() < 0.7:
                e["ttft_ms"] = round(rnd.uniform(1.0, e["latency_ms"]), 3)
        for k, choices in (("user", ["ann", "bob", "cy", 'we,ird "u"']),
                           ("agent", ["planner", "coder", "critic"]),
                           ("session", ["s-1", "s-2", "s-3"])):
            if rnd.random() < 0.8:
                e[k] = rnd.choice(choices)
        if "session" in e and rnd.random() < 0.7:
            e["round"] = rnd.randint(0, 4)
        r = rnd.random()
        if r < 0.08:
            e["status"] = rnd.choice([429, 500, 503])
            if rnd.random() < 0.6:
                e["error_type"] = rnd.choice(["rate_limit", "server_error"])
        elif r < 0.12:
            e["error_type"] = "timeout"
        elif r < 0.5:
            e["status"] = 200
        out.append(e)
    return out


def is_error(e):
    return e.get("status", 0) >= 400 or bool(e.get("error_type"))


def ingest(ws, events, key):
    for i in range(0, len(events), 500):
        r = S.ingest(events[i:i + 500], key=key)
        assert r.status == 200, r
    EVENTS[ws].extend(events)


def learn_costs(ws, key):
    """Each event's cost as stored (catalog-priced ones differ from what
    was sent), from GET /requests."""
    cost, cursor = {}, None
    while True:
        p = {"from": iso(NOW_MS - 10 * DAY), "to": iso(NOW_MS + DAY),
             "limit": 1000}
        if cursor:
            p["cursor"] = cursor
        r = S.get("/api/v1/requests?" + urlencode(p), key=key)
        assert r.status == 200, r
        body = r.json()
        for e in body["requests"]:
            cost[e["id"]] = round(e["cost_usd"] * 1e9)
        cursor = body["next_cursor"]
        if cursor is None:
            break
    for e in EVENTS[ws]:
        e["nusd"] = cost[e["id"]]
        if "cost_usd" in e:
            assert e["nusd"] == round(e["cost_usd"] * 1e9), e


# ---- brute force ----

def iso(ms, tz=None):
    """RFC 3339 with milliseconds, in time zone tz (a timedelta)."""
    t = timezone(tz or timedelta(0))
    return datetime.fromtimestamp(ms / 1000, t).isoformat(
        timespec="milliseconds")


def parse_ts(s):
    return int(round(datetime.fromisoformat(
        s.replace("Z", "+00:00")).timestamp() * 1000))


def select(ws, lo, hi, f):
    """The events of ws in [lo, hi) passing the filters f."""
    out = []
    for e in EVENTS[ws]:
        if not lo <= e["ts"] < hi:
            continue
        if any(e.get(k) != f[k] for k in
               ("provider", "model", "agent", "user", "session") if k in f):
            continue
        if f.get("status") == "ok" and is_error(e):
            continue
        if f.get("status") == "error" and not is_error(e):
            continue
        out.append(e)
    return out


def agg(events):
    a = {"calls": len(events), "errors": sum(map(is_error, events)),
         "nusd": sum(e["nusd"] for e in events),
         "lat": sorted(e["latency_ms"] for e in events if "latency_ms" in e),
         "ttft": sorted(e["ttft_ms"] for e in events if "ttft_ms" in e),
         "first": min((e["ts"] for e in events), default=None),
         "last": max((e["ts"] for e in events), default=None)}
    for t in TOK:
        a[t] = sum(e.get(t + "_tokens", 0) for e in events)
    a["total"] = a["input"] + a["output"] + a["cache_read"] + a["cache_write"]
    return a


def group(events, keyf):
    g = {}
    for e in events:
        g.setdefault(keyf(e), []).append(e)
    return {k: agg(v) for k, v in g.items()}


def nearest_rank(vals, q):
    return vals[max(1, math.ceil(q * len(vals) - 1e-9)) - 1]


def auto_bucket(lo, hi):
    for name in ("1m", "5m", "1h", "1d"):
        b = BUCKETS[name]
        if (hi - 1) // b - lo // b + 1 <= 300:
            return name
    return "1d"


# ---- comparisons ----

def usd(x):
    return round(x * 1e9)


def check_tokens(got, a, ctx):
    for t in TOK + ["total"]:
        assert got[t] == a[t], (ctx, t, got, a[t])


def check_pct(got, vals, ctx):
    """A {p50, p95, p99, avg} object against the exact values."""
    if not vals:
        assert got is None, (ctx, got)
        return
    assert got is not None, ctx
    for name, q in (("p50", .5), ("p95", .95), ("p99", .99)):
        want = nearest_rank(vals, q)
        assert abs(got[name] - want) <= 0.01 * want + 0.001, (
            ctx, name, got[name], want)
    avg = sum(vals) / len(vals)
    assert abs(got["avg"] - avg) <= 1e-6 * avg + 0.001, (ctx, got["avg"], avg)


def key_of(item, by):
    return tuple(item.get(d) for d in DIMS[by])


def ekey(e, by):
    return tuple(e.get(d) for d in DIMS[by])


def get(path, params, key="admin", status=200):
    r = S.get("/api/v1/" + path + "?" + urlencode(params), key=key)
    assert r.status == status, (path, params, r)
    return r


def window_params(w, f):
    p = dict(f)
    p["from"], p["to"] = iso(w[0], w[2]), iso(w[1], w[3])
    return p


def check_overview(ws, key, w, f):
    p = window_params(w, f)
    evs = select(ws, w[0], w[1], f)
    a = agg(evs)
    ctx = (ws, p)
    o = get("usage/overview", p, key).json()
    assert parse_ts(o["from"]) == w[0] and parse_ts(o["to"]) == w[1], o
    assert o["calls"] == a["calls"] and o["errors"] == a["errors"], (ctx, o)
    check_tokens(o["tokens"], a, ctx)
    users = {e["user"] for e in evs if e.get("user")}
    agents = {e["agent"] for e in evs if e.get("agent")}
    assert o["unique_users"] == len(users), (ctx, o)
    assert o["active_agents"] == len(agents), (ctx, o)
    with_user = sum(1 for e in evs if e.get("user"))
    cpu = with_user / len(users) if users else 0
    assert abs(o["calls_per_user"] - cpu) < 1e-9, (ctx, o, cpu)

    c = get("cost/overview", p, key).json()
    assert usd(c["cost_usd"]) == a["nusd"], (ctx, c, a["nusd"])
    assert c["calls"] == a["calls"] and c["tokens"] == a["total"], (ctx, c)
    if a["calls"]:
        assert abs(c["avg_cost_per_call"] - a["nusd"] / 1e9 / a["calls"]) \
            < 1e-12, (ctx, c)
    if a["total"]:
        assert abs(c["cost_per_1k_tokens"] -
                   a["nusd"] / 1e9 * 1000 / a["total"]) < 1e-12, (ctx, c)
    for period in ("day", "month"):
        pr = c["projection"][period]
        start = parse_ts(pr["start"])
        spent = sum(e["nusd"] for e in select(ws, start, NOW_MS + DAY, f))
        assert usd(pr["spent_usd"]) == spent, (ctx, period, pr, spent)
        assert pr["projected_usd"] >= pr["spent_usd"] - 1e-12, (ctx, pr)
    assert parse_ts(c["projection"]["day"]["start"]) % DAY == 0, c

    po = get("performance/overview", p, key).json()
    assert po["calls"] == a["calls"] and po["errors"] == a["errors"], po
    rate = 100.0 * a["errors"] / a["calls"] if a["calls"] else 0
    assert abs(po["error_rate"] - rate) < 1e-9, (ctx, po)
    rps = a["calls"] * 1000.0 / (w[1] - w[0])
    assert abs(po["throughput_rps"] - rps) <= 1e-9 * rps + 1e-15, (ctx, po)
    check_pct(po["latency_ms"], a["lat"], ctx)
    check_pct(po["ttft_ms"], a["ttft"], ctx)


def check_distributions(ws, key, w, f):
    p = window_params(w, f)
    evs = select(ws, w[0], w[1], f)
    for by in DIMS:
        d = get("usage/distribution", dict(p, by=by), key).json()
        want = group(evs, lambda e: ekey(e, by))
        assert d["calls"] == len(evs), (p, by, d["calls"])
        assert len(d["items"]) == len(want), (p, by, d["items"], want.keys())
        calls = [it["calls"] for it in d["items"]]
        assert calls == sorted(calls, reverse=True), (p, by, calls)
        for it in d["items"]:
            a = want[key_of(it, by)]
            assert it["calls"] == a["calls"] and it["errors"] == a["errors"]
            assert usd(it["cost_usd"]) == a["nusd"], (p, by, it, a["nusd"])
            check_tokens(it["tokens"], a, (p, by))
            assert abs(it["share"] - 100.0 * a["calls"] / len(evs)) < 1e-9
    t = get("usage/top-users", dict(p, limit=3), key).json()
    want = group([e for e in evs if e.get("user")], lambda e: e["user"])
    order = sorted(want, key=lambda u: (-want[u]["calls"], u))[:3]
    assert [u["user"] for u in t["users"]] == order, (p, t, want)
    for u in t["users"]:
        assert u["calls"] == want[u["user"]]["calls"]
        assert usd(u["cost_usd"]) == want[u["user"]]["nusd"]
    for path, by, member in (("cost/by-model", "model", "models"),
                             ("cost/by-provider", "provider", "providers")):
        c = get(path, p, key).json()
        want = group(evs, lambda e: ekey(e, by))
        assert usd(c["cost_usd"]) == sum(e["nusd"] for e in evs), (p, c)
        assert len(c[member]) == len(want), (p, path)
        costs = [usd(it["cost_usd"]) for it in c[member]]
        assert costs == sorted(costs, reverse=True), (p, path, costs)
        for it in c[member]:
            a = want[key_of(it, by)]
            assert usd(it["cost_usd"]) == a["nusd"] and \
                it["calls"] == a["calls"], (p, path, it, a)
            check_tokens(it["tokens"], a, (p, path))


def dense(lo, hi, b):
    return list(range(lo - lo % b, hi, b))


def check_series(ws, key, w, f, bucket):
    p = window_params(w, f)
    if bucket != "auto":
        p["bucket"] = bucket
    name = auto_bucket(w[0], w[1]) if bucket == "auto" else bucket
    b = BUCKETS[name]
    evs = select(ws, w[0], w[1], f)
    per = group(evs, lambda e: e["ts"] - e["ts"] % b)
    empty = agg([])
    starts = dense(w[0], w[1], b)

    u = get("usage/timeseries", p, key).json()
    assert u["bucket"] == name, (p, u["bucket"], name)
    assert [parse_ts(x["ts"]) for x in u["points"]] == starts, p
    for x in u["points"]:
        a = per.get(parse_ts(x["ts"]), empty)
        assert x["calls"] == a["calls"] and x["errors"] == a["errors"], (p, x)
        check_tokens(x["tokens"], a, p)
    for by in ("provider", "model", "agent", "user"):
        g = get("usage/timeseries", dict(p, group_by=by), key).json()
        want = group(evs, lambda e: (e["ts"] - e["ts"] % b,) + ekey(e, by))
        got = {(parse_ts(x["ts"]),) + key_of(x, by): x for x in g["points"]}
        assert set(got) == set(want), (p, by)
        for k, x in got.items():
            assert x["calls"] == want[k]["calls"], (p, by, k)
            check_tokens(x["tokens"], want[k], (p, by))

    for gb in ("model", "provider", "none"):
        t = get("cost/trend", dict(p, group_by=gb), key).json()
        if gb == "none":
            assert [parse_ts(x["ts"]) for x in t["points"]] == starts
            for x in t["points"]:
                a = per.get(parse_ts(x["ts"]), empty)
                assert usd(x["cost_usd"]) == a["nusd"], (p, x, a["nusd"])
                assert x["calls"] == a["calls"]
            continue
        want = group(evs, lambda e: (e["ts"] - e["ts"] % b,) + ekey(e, gb))
        got = {(parse_ts(x["ts"]),) + key_of(x, gb): x for x in t["points"]}
        assert set(got) == set(want), (p, gb)
        for k, x in got.items():
            assert usd(x["cost_usd"]) == want[k]["nusd"], (p, gb, k)

    lat = get("performance/latency", p, key).json()
    assert [parse_ts(x["ts"]) for x in lat["points"]] == starts
    for x in lat["points"]:
        a = per.get(parse_ts(x["ts"]), empty)
        assert x["samples"] == len(a["lat"]), (p, x)
        if a["lat"]:
            check_pct(x, a["lat"], p)
        else:
            assert x["p50"] is None and x["avg"] is None, x
        if a["ttft"]:
            want = nearest_rank(a["ttft"], .95)
            assert abs(x["ttft_p95"] - want) <= 0.01 * want + 0.001, x

    th = get("performance/throughput", p, key).json()
    assert [parse_ts(x["ts"]) for x in th["points"]] == starts
    for x in th["points"]:
        ts = parse_ts(x["ts"])
        a = per.get(ts, empty)
        assert x["calls"] == a["calls"] and x["errors"] == a["errors"] and \
            x["success"] == a["calls"] - a["errors"], (p, x)
        lo, hi = max(ts, w[0]), min(ts + b, w[1])
        assert abs(x["rps"] - a["calls"] * 1000.0 / (hi - lo)) < 1e-9, x


def check_errors(ws, key, w, f):
    p = window_params(w, f)
    evs = select(ws, w[0], w[1], f)
    errs = [e for e in evs if is_error(e)]
    o = get("performance/errors", p, key).json()
    assert o["calls"] == len(evs) and o["errors"] == len(errs), (p, o)
    for member, keyf, name in (
            ("by_type", lambda e: (e.get("error_type"),), ("error_type",)),
            ("by_status", lambda e: (e.get("status"),), ("status",)),
            ("by_model", lambda e: (e["provider"], e["model"]),
             ("provider", "model"))):
        want = group(errs, keyf)
        got = {tuple(it[n] for n in name): it for it in o[member]}
        assert set(got) == set(want), (p, member, got.keys(), want.keys())
        counts = [it["errors"] for it in o[member]]
        assert counts == sorted(counts, reverse=True), (p, member)
        for k, it in got.items():
            a = want[k]
            assert it["errors"] == a["calls"], (p, member, it, a)
            assert parse_ts(it["first_seen"]) == a["first"], (p, it, a)
            assert parse_ts(it["last_seen"]) == a["last"], (p, it, a)
            assert abs(it["share_of_errors"] -
                       100.0 * a["calls"] / len(errs)) < 1e-9
            assert abs(it["share_of_calls"] -
                       100.0 * a["calls"] / len(evs)) < 1e-9


# ---- the windows ----

IST = timedelta(hours=5, minutes=30)
PST = timedelta(hours=-8)


def windows():
    """(from, to, tz of from, tz of to): unaligned, across boundaries."""
    day0 = NOW_MS - NOW_MS % DAY
    return [
        # Everything, from a +05:30 clock to a -08:00 one.
        (NOW_MS - 4 * DAY + 12345, NOW_MS + 60000 + 678, IST, PST),
        # Across two day boundaries, unaligned seconds.
        (day0 - DAY - 5 * HOUR - 17 * MIN - 23456, day0 + 2 * HOUR + 7 * MIN
         + 8765, PST, IST),
        # A few hours around a day boundary (hour and minute rows).
        (day0 - 3 * HOUR - 59 * MIN - 59999, day0 + 42 * MIN + 1, IST, None),
        # Inside one hour, minute edges on both sides.
        (day0 - DAY + 3 * HOUR + 4 * MIN + 500, day0 - DAY + 3 * HOUR + 51 *
         MIN + 999, None, PST),
        # Shorter than a minute: raw events only.
        (day0 - DAY - 20000, day0 - DAY + 25000, PST, PST),
        # Exactly whole days (day rows only).
        (day0 - 2 * DAY, day0, None, None),
    ]


FILTERS = [{}, {"provider": "openai"}, {"model": "claude-3-haiku"},
           {"agent": "coder"}, {"user": 'we,ird "u"'}, {"user": "ann",
                                                       "status": "error"},
           {"session": "s-2"}, {"status": "ok"}, {"status": "error"},
           {"provider": "anthropic", "agent": "critic", "user": "bob"}]


def check_all(ws="default", key="admin", wins=None, filters=None):
    for w in wins or windows():
        for f in filters or FILTERS:
            check_overview(ws, key, w, f)
            check_distributions(ws, key, w, f)
            if "session" not in f:
                check_errors(ws, key, w, f)


# ---- tests ----

def setup():
    global OTHER
    OTHER = S.create_key("admin", workspace="other", name="analytics")
    rnd = random.Random(20261122)
    ingest("default", make_events(rnd, 2400, "an", 3 * DAY), "admin")
    # The same ids in the other workspace, different events.
    ingest("other", make_events(rnd, 600, "an", 3 * DAY), OTHER)
    learn_costs("default", "admin")
    learn_costs("other", OTHER)


def test_totals_and_breakdowns_exact():
    """Overviews, distributions, top users, cost by model/provider and the
    error analysis equal brute force for every window and filter."""
    check_all()


def test_series_exact():
    """Every point of every time series, for every bucket, equals brute
    force (percentiles within 1%)."""
    wins = windows()
    for w in wins:
        buckets = ["auto", "5m", "1h", "1d"]
        if w[1] - w[0] <= 6 * HOUR:
            buckets.append("1m")
        for b in buckets:
            for f in ({}, {"model": "gpt-4o", "status": "error"},
                      {"session": "s-1"}, {"user": "cy"}):
                check_series("default", "admin", w, f, b)


def test_presets():
    """range=7d and 90d hold every event (all within 3 days); bucket=auto
    picks 1h and 1d for them."""
    for rng, bucket in (("7d", "1h"), ("90d", "1d")):
        o = get("usage/overview", {"range": rng}).json()
        assert o["calls"] == len(EVENTS["default"]), o
        t = get("usage/timeseries", {"range": rng}).json()
        assert t["bucket"] == bucket, t["bucket"]
        assert sum(x["calls"] for x in t["points"]) == \
            len(EVENTS["default"])
        assert len(t["points"]) <= 300
        c = get("cost/overview", {"range": rng}).json()
        assert usd(c["cost_usd"]) == sum(e["nusd"]
                                         for e in EVENTS["default"])


def test_workspaces_separate():
    """The other workspace sees exactly its own events, never ours."""
    check_all("other", OTHER, windows()[:2], [{}, {"user": "ann"},
                                              {"session": "s-3"}])
    check_series("other", OTHER, windows()[1], {}, "1h")
    nobody = S.create_key("read", workspace="nobody")
    o = get("usage/overview", {"range": "7d"}, nobody).json()
    assert o["calls"] == 0 and o["unique_users"] == 0, o
    t = get("performance/latency", {"range": "24h"}, nobody).json()
    assert all(x["samples"] == 0 for x in t["points"]), t


def csv_rows(r, name):
    assert r.headers["content-type"].startswith("text/csv"), r.headers
    disp = r.headers.get("content-disposition", "")
    assert disp.startswith("attachment; filename=\"%s-" % name) and \
        disp.endswith(".csv\""), disp
    assert r.body.endswith(b"\r\n"), r.body[-20:]
    return list(csv.DictReader(io.StringIO(r.body.decode(), newline="")))


def test_csv_matches_json():
    """CSV answers hold the JSON answers' rows, RFC 4180 quoted."""
    w = windows()[0]
    p = window_params(w, {})
    j = get("usage/timeseries", dict(p, group_by="user")).json()
    rows = csv_rows(get("usage/timeseries",
                        dict(p, group_by="user", format="csv")),
                    "usage-timeseries")
    assert len(rows) == len(j["points"]), (len(rows), len(j["points"]))
    for row, x in zip(rows, j["points"]):
        assert row["ts"] == x["ts"] and row["user"] == (x["user"] or "")
        assert int(row["calls"]) == x["calls"]
        assert int(row["total_tokens"]) == x["tokens"]["total"]
    assert any(r["user"] == 'we,ird "u"' for r in rows)

    j = get("cost/by-model", p).json()
    rows = csv_rows(get("cost/by-model", dict(p, format="csv")),
                    "cost-by-model")
    assert [(r["provider"], r["model"], usd(float(r["cost_usd"])))
            for r in rows] == [(m["provider"], m["model"],
                                usd(m["cost_usd"])) for m in j["models"]]

    j = get("performance/errors", p).json()
    rows = csv_rows(get("performance/errors", dict(p, format="csv")),
                    "performance-errors")
    n = sum(len(j[m]) for m in ("by_type", "by_status", "by_model"))
    assert len(rows) == n, (len(rows), n)
    assert {r["by"] for r in rows} == {"error_type", "status", "model"}
    assert sum(int(r["errors"]) for r in rows if r["by"] == "status") == \
        j["errors"]

    rows = csv_rows(get("usage/overview", dict(p, format="csv")),
                    "usage-overview")
    o = get("usage/overview", p).json()
    assert len(rows) == 1 and int(rows[0]["calls"]) == o["calls"]
    rows = csv_rows(get("performance/latency",
                        dict(p, format="csv", bucket="1d")),
                    "performance-latency")
    assert len(rows) == len(dense(w[0], w[1], DAY))


class Busy:
    """What Loader needs of a stack, with a key of workspace "load"."""

    def __init__(self, key):
        self.port = S.port
        self.admin_key = key


def test_exact_right_after_ingest():
    """Events are counted the moment their ingest is answered, before the
    rollups have them: ingest into another workspace keeps the collector
    busy, so it flushes its rollups only once a second."""
    loader = Loader(Busy(S.create_key("ingest", workspace="load")), "busy")
    loader.start()
    try:
        rnd = random.Random(7)
        lagged = 0
        for n in range(6):
            ingest("default", make_events(rnd, 100, "fresh%d" % n, 3 * DAY),
                   "admin")
            seq = S.query("SELECT (SELECT value FROM meta WHERE key = "
                          "'rollup_seq'), (SELECT max(seq) FROM events WHERE "
                          "ws = (SELECT id FROM workspaces WHERE name = "
                          "'default'))")[0]
            lagged += seq[0] < seq[1]
            learn_costs("default", "admin")
            check_all(wins=windows()[:2], filters=[{}, {"agent": "planner"}])
    finally:
        stop_loaders([loader])
    print("    answers checked while the rollups lagged: %d of 6" % lagged)
    assert lagged > 0


def test_exact_after_collector_sigkill():
    """SIGKILL the collector right after an ingest (its rollups not yet
    flushed): answers are exact while it restarts and after."""
    rnd = random.Random(99)
    ingest("default", make_events(rnd, 500, "kill", 3 * DAY), "admin")
    old = S.pid("collector")
    os.kill(old, signal.SIGKILL)
    seq = S.query("SELECT (SELECT value FROM meta WHERE key = 'rollup_seq'),"
                  " max(seq) FROM events")[0]
    print("    after the kill: rollup_seq=%s max(seq)=%s" % seq)
    learn_costs("default", "admin")
    check_all(wins=windows()[:2], filters=[{}, {"user": "bob"}])
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            if S.pid("collector") != old and S.wait_ready(5):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    assert S.pid("collector") != old, "collector not restarted"
    ingest("default", make_events(rnd, 200, "after", 3 * DAY), "admin")
    learn_costs("default", "admin")
    # Give the catch-up and the flush time, then compare the rollups too.
    time.sleep(1.5)
    seq = S.query("SELECT (SELECT value FROM meta WHERE key = 'rollup_seq'),"
                  " max(seq) FROM events")[0]
    assert seq[0] == seq[1], seq
    check_all(wins=windows()[:3], filters=[{}, {"status": "error"},
                                           {"session": "s-1"}])


def test_bad_parameters():
    """Bad parameters answer 400 naming the parameter (and quoting it)."""
    cases = [("usage/timeseries", "bucket=2m", "bucket", "2m"),
             ("usage/timeseries", "group_by=colour", "group_by", "colour"),
             ("usage/distribution", "by=team", "by", "team"),
             ("usage/top-users", "limit=0", "limit", "0"),
             ("usage/top-users", "limit=abc", "limit", "abc"),
             ("cost/trend", "group_by=user", "group_by", "user"),
             ("cost/overview", "format=xml", "format", "xml"),
             ("performance/overview", "range=2d", "range", "2d"),
             ("performance/latency", "from=yesterday", "from", "yesterday"),
             ("performance/throughput", "status=maybe", "status", "maybe"),
             ("usage/overview", "bucket=1h", "bucket", "bucket"),
             ("usage/overview", "colour=red", "colour", "colour"),
             ("cost/by-model", "provider=", "provider", ""),
             ("performance/latency", "range=90d&bucket=1m", "bucket", "1m"),
             ("performance/errors", "session=s-1", "session", "s-1"),
             ("usage/overview", "from=1969-12-31T23:00:00Z", "from", None)]
    for path, q, field, quoted in cases:
        r = S.get("/api/v1/%s?%s" % (path, q))
        assert r.status == 400, (path, q, r)
        err = r.json()["error"]
        assert err["field"] == field, (path, q, err)
        if quoted:
            assert '"%s"' % quoted in err["message"], (path, q, err)
    # Roles: an ingest key may not read analytics.
    ing = S.create_key("ingest", workspace="default")
    assert S.get("/api/v1/usage/overview", key=ing).status == 403


def main():
    global S
    with Stack() as s:
        S = s
        setup()
        failed = run_tests([test_totals_and_breakdowns_exact,
                            test_series_exact, test_presets,
                            test_workspaces_separate, test_csv_matches_json,
                            test_exact_right_after_ingest,
                            test_exact_after_collector_sigkill,
                            test_bad_parameters], s)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
