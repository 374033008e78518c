"""End-to-end: GET /api/v1/requests and /requests/{id}: raw events newest
first, every filter and the pagination compared with a brute-force pass
over what was sent, CSV that round-trips, workspace separation, and bad
parameters."""
import csv
import io
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlencode

from stack import Stack, run_tests

S = None
SENT = []  # the events of the default workspace, as sent
NOW_MS = int(time.time() * 1000)


def ms_iso(ms, tz_hours=0):
    tz = timezone(timedelta(hours=tz_hours))
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(
        timespec="milliseconds")


def setup():
    rnd = random.Random(11)
    for i in range(420):
        e = {"id": "rq-%03d" % i,
             "ts": NOW_MS - rnd.randint(0, 30 * 3600 * 1000),
             "provider": rnd.choice(["openai", "anthropic", "mistral_ai"]),
             "model": rnd.choice(["m-a", "m-b", "m-c"]),
             "input_tokens": rnd.randint(1, 500),
             "output_tokens": rnd.randint(0, 200),
             "user": rnd.choice(["ann", "bob", 'we,ird "user"']),
             "agent": rnd.choice(["a1", "a2"]),
             "session": rnd.choice(["s1", "s2", None]),
             "latency_ms": rnd.uniform(10, 5000)}
        if rnd.random() < 0.1:
            e["status"] = 429
            e["error_type"] = "rate_limit"
        if e["session"] is None:
            del e["session"]
        SENT.append(e)
    for i in range(0, len(SENT), 100):
        assert S.ingest(SENT[i:i + 100]).status == 200


def expect(pred, since_ms):
    """Ids of sent events matching pred in [since, now), newest first."""
    rows = [e for e in SENT if e["ts"] >= since_ms and pred(e)]
    rows.sort(key=lambda e: (e["ts"], int(e["id"][3:])), reverse=True)
    return [e["id"] for e in rows]


def fetch_all(params, limit):
    """Every page of /requests; returns the ids in order."""
    ids, cursor, pages = [], None, 0
    while True:
        p = dict(params, limit=limit)
        if cursor:
            p["cursor"] = cursor
        r = S.get("/api/v1/requests?" + urlencode(p))
        assert r.status == 200, r
        body = r.json()
        ids += [e["id"] for e in body["requests"]]
        cursor = body["next_cursor"]
        pages += 1
        if cursor is None:
            return ids, pages


def test_newest_first_and_filters_match_brute_force():
    """Each filter, paginated, equals the brute-force answer exactly."""
    # An explicit window: "range=24h" would be measured from the server's
    # now, a few seconds after this test's.
    since = NOW_MS - 24 * 3600 * 1000
    window = {"from": ms_iso(since), "to": ms_iso(NOW_MS + 60000)}
    cases = [({}, lambda e: True),
             ({"provider": "openai"}, lambda e: e["provider"] == "openai"),
             ({"model": "m-b"}, lambda e: e["model"] == "m-b"),
             ({"agent": "a2"}, lambda e: e["agent"] == "a2"),
             ({"user": 'we,ird "user"'},
              lambda e: e["user"] == 'we,ird "user"'),
             ({"session": "s1"}, lambda e: e.get("session") == "s1"),
             ({"status": "error"}, lambda e: "status" in e),
             ({"status": "ok", "provider": "anthropic"},
              lambda e: "status" not in e and e["provider"] == "anthropic")]
    for params, pred in cases:
        want = expect(pred, since)
        got, pages = fetch_all(dict(params, **window), 17)
        assert got == want, (params, len(got), len(want))
        assert pages == len(want) // 17 + 1, (params, pages)


def test_range_preset():
    """range=24h answers the events of the last 24 hours."""
    r = S.get("/api/v1/requests?range=24h&limit=1000")
    assert r.status == 200, r
    got = {e["id"] for e in r.json()["requests"]}
    inside = {e["id"] for e in SENT if e["ts"] >= NOW_MS - 86400000 + 60000}
    outside = {e["id"] for e in SENT if e["ts"] < NOW_MS - 86400000 - 60000}
    assert inside <= got and not (outside & got), (len(got), len(inside))


def test_from_to_with_offsets():
    """from/to with time-zone offsets select the same instants."""
    lo, hi = NOW_MS - 20 * 3600 * 1000, NOW_MS - 2 * 3600 * 1000
    want = [e["id"] for e in sorted(
        (e for e in SENT if lo <= e["ts"] < hi),
        key=lambda e: (e["ts"], int(e["id"][3:])), reverse=True)]
    for tz in (0, 5, -8):
        got, _ = fetch_all({"from": ms_iso(lo, tz), "to": ms_iso(hi, tz)},
                           1000)
        assert got == want, (tz, len(got), len(want))


def test_csv_round_trips():
    """CSV has a header, every row, and awkward fields survive."""
    r = S.get("/api/v1/requests?range=7d&format=csv")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/csv"), r.headers
    assert "attachment" in r.headers.get("content-disposition", ""), r.headers
    rows = list(csv.DictReader(io.StringIO(r.body.decode())))
    assert len(rows) == len(SENT), len(rows)
    by_id = {e["id"]: e for e in SENT}
    for row in rows:
        e = by_id[row["id"]]
        assert row["user"] == e["user"], row
        assert int(row["input_tokens"]) == e["input_tokens"], row
        assert row["error"] == ("true" if "status" in e else "false"), row
    one = S.get("/api/v1/requests/rq-007").json()
    assert one["id"] == "rq-007" and one["user"] == by_id["rq-007"]["user"]


def test_one_event_and_workspaces():
    """/requests/{id} answers 404 for unknown ids and other workspaces."""
    r = S.get("/api/v1/requests/rq-001")
    assert r.status == 200 and r.json()["input_tokens"] == \
        SENT[1]["input_tokens"], r
    assert S.get("/api/v1/requests/nope").status == 404
    other = S.create_key("read", workspace="elsewhere")
    assert S.get("/api/v1/requests/rq-001", key=other).status == 404
    r = S.get("/api/v1/requests?range=7d", key=other)
    assert r.status == 200 and r.json()["count"] == 0, r


def test_bad_parameters():
    """Every bad parameter is a 400 naming it."""
    for q, field in (("range=2d", "range"), ("from=yesterday", "from"),
                     ("from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z",
                      "to"),
                     ("range=1h&from=2026-01-01T00:00:00Z", "range"),
                     ("status=maybe", "status"), ("limit=0", "limit"),
                     ("limit=1001", "limit"), ("cursor=xyz", "cursor"),
                     ("format=xml", "format"), ("colour=red", "colour"),
                     ("provider=", "provider")):
        r = S.get("/api/v1/requests?" + q)
        assert r.status == 400, (q, r)
        assert r.json()["error"]["field"] == field, (q, r.json())


def main():
    global S
    with Stack() as s:
        S = s
        setup()
        failed = run_tests([test_newest_first_and_filters_match_brute_force,
                            test_range_preset, test_from_to_with_offsets,
                            test_csv_round_trips,
                            test_one_event_and_workspaces,
                            test_bad_parameters], s)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
