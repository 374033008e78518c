"""End-to-end: ingest, exact read-back, bad input, duplicates, auth, keys,
pricing, health and errors, through nginx on a private stack."""
import json
import os
import random
import signal
import subprocess
import sys
import time

from stack import Stack, run_tests, SRC

S = None  # the stack shared by the tests of this file


def event(i, **kw):
    """A valid event with a unique id."""
    e = {"id": "ing-%d-%d" % (os.getpid(), i), "provider": "openai",
         "model": "gpt-4o-mini", "input_tokens": 100 + i,
         "output_tokens": 20 + i, "latency_ms": 200.0 + i, "ttft_ms": 50.0,
         "status": 200, "user": "alice", "agent": "router"}
    e.update(kw)
    return e


def count(where="1=1", args=()):
    return S.query("SELECT count(*) FROM events WHERE " + where, args)[0][0]


def test_single_and_batch_read_back_exact():
    """Ingested events are committed and the live totals equal the raw rows."""
    before = S.stats("1h")
    r = S.ingest(event(1, id="single-1"))
    assert r.status == 200, r
    assert r.json() == {"accepted": 1, "new": 1, "duplicates": 0}, r
    batch = [event(i, provider=random.choice(["openai", "anthropic"]),
                   model=random.choice(["gpt-4o", "claude-sonnet-4-5"]),
                   cache_read_tokens=i % 7, cost_usd=(i % 3) * 0.001 or None)
             for i in range(100, 350)]
    for e in batch:
        if e["cost_usd"] is None:
            del e["cost_usd"]
    r = S.ingest(batch)
    assert r.status == 200, r
    body = r.json()
    assert body == {"accepted": 250, "new": 250, "duplicates": 0}, body
    # Without ids the server assigns them and lists them in order.
    r = S.ingest([event(1, id=None), event(2, id="given-2")])
    ids = r.json()["ids"]
    assert len(ids) == 2 and ids[1] == "given-2" and len(ids[0]) == 32, ids
    assert count("id = ?", (ids[0],)) == 1
    S.wait_second_closed()
    # A 2xx means committed: the rows are there now.
    assert count() >= 251
    after = S.stats("1h")
    raw = S.query("SELECT count(*), sum(input_tokens), sum(output_tokens), "
                  "sum(cache_read_tokens), sum(is_error), "
                  "sum(CAST(round(cost_usd * 1e9) AS INTEGER)) FROM events "
                  "WHERE ws = (SELECT id FROM workspaces WHERE name = "
                  "'default')")[0]
    assert after["totals"]["requests"] == raw[0], (after["totals"], raw)
    assert after["totals"]["tokens"]["input"] == raw[1]
    assert after["totals"]["tokens"]["output"] == raw[2]
    assert after["totals"]["tokens"]["cache_read"] == raw[3]
    assert after["totals"]["errors"] == raw[4]
    assert abs(after["totals"]["cost_usd"] - raw[5] / 1e9) < 1e-9
    assert after["requests"] - before["requests"] == 253, (before, after)
    # Per model numbers add up to the workspace's.
    assert sum(m["requests"] for m in after["models"]) == after["requests"]
    assert sum(p["requests"] for p in after["providers"]) == after["requests"]
    # Catalog pricing: a gpt-4o event without cost_usd is priced.
    rows = S.query("SELECT cost_usd, cost_source, input_tokens, "
                   "output_tokens, cache_read_tokens FROM events WHERE "
                   "model = 'gpt-4o' AND cost_source = 1 LIMIT 1")
    if rows:
        cost, _, inp, out, cr = rows[0]
        price = [m for m in S.get("/api/v1/pricing").json()["models"]
                 if m["provider"] == "openai" and m["model"] == "gpt-4o"][0]
        want = (inp * price["input"] + out * price["output"] +
                cr * price["cache_read"]) / 1e6
        assert abs(cost - want) < 1e-9, (cost, want)


def test_percentiles_match_raw_rows():
    """Window percentiles are within 1% of the exact ones from the rows."""
    rnd = random.Random(3)
    lat = [rnd.lognormvariate(7, 0.8) for _ in range(1000)]
    evs = [event(i, id="pct-%d" % i, model="pct-model", provider="pcttest",
                 latency_ms=lat[i], ttft_ms=lat[i] / 5)
           for i in range(1000)]
    r = S.ingest(evs)
    assert r.status == 200, r
    S.wait_second_closed()
    st = S.stats("5m")
    m = [x for x in st["models"] if x["model"] == "pct-model"][0]
    lat = sorted(x[0] for x in S.query(
        "SELECT latency_ms FROM events WHERE model = 'pct-model'"))
    import math
    for q, k in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        exact = lat[max(1, math.ceil(q * len(lat) - 1e-9)) - 1]
        got = m["latency_ms"][k]
        assert abs(got - exact) / exact <= 0.01, (k, got, exact)


def test_duplicates_are_not_stored_twice():
    """An id already stored is reported as a duplicate and not stored."""
    evs = [event(i, id="dup-%d" % i) for i in range(5)]
    assert S.ingest(evs).status == 200
    n = count("id LIKE 'dup-%'")
    r = S.ingest(evs + [event(9, id="dup-new")])
    assert r.status == 200, r
    assert r.json()["new"] == 1 and r.json()["duplicates"] == 5, r
    assert count("id LIKE 'dup-%'") == n + 1
    # Duplicates inside one batch too.
    r = S.ingest([event(1, id="dup-same"), event(2, id="dup-same")])
    assert r.json()["new"] == 1 and r.json()["duplicates"] == 1, r


def test_bad_input_changes_nothing():
    """Every bad input gets its status and a clear error, and stores nothing."""
    n = count()
    cases = [
        ("not json", "{nope", "application/json", 400, "invalid_json"),
        ("wrong type", json.dumps(event(1)), "text/plain", 415,
         "unsupported_media_type"),
        ("empty array", "[]", "application/json", 400, None),
        ("scalar", "42", "application/json", 400, None),
    ]
    for name, body, ctype, status, code in cases:
        r = S.post("/api/v1/events", body, headers={"Content-Type": ctype})
        assert r.status == status, (name, r)
        err = r.json()["error"]
        assert err["message"], (name, err)
        if code:
            assert err["code"] == code, (name, err)
    # One bad event in a batch: 400 naming index and field; nothing stored.
    batch = [event(i, id="bad-batch-%d" % i) for i in range(10)]
    batch[7]["input_tokens"] = -3
    r = S.ingest(batch)
    assert r.status == 400, r
    err = r.json()["error"]
    assert err["index"] == 7 and "input_tokens" in err["field"], err
    assert "-3" in err["message"], err
    for field, value in (("model", None), ("provider", ""),
                         ("output_tokens", 1.5), ("status", "200"),
                         ("latency_ms", -1), ("tags", {"k%d" % i: "v"
                                                       for i in range(17)}),
                         ("workspace", "other"), ("nonsense", 1)):
        e = event(1, id="bad-field")
        if value is None:
            del e[field]
        else:
            e[field] = value
        r = S.ingest([event(0, id="bad-ok"), e])
        assert r.status == 400, (field, r)
        assert field in r.json()["error"]["field"], (field, r.json())
    # Too many events and too large a body.
    r = S.ingest([event(i, id="many-%d" % i) for i in range(1001)])
    assert r.status == 413, r
    big = [event(i, id="big-%d" % i, user="u" * 100,
                 tags={"k%d" % j: "v" * 250 for j in range(16)})
           for i in range(300)]
    r = S.post("/api/v1/events", json.dumps(big))
    assert r.status == 413, r
    assert r.json()["error"]["code"] == "too_large", r
    assert count() == n, "bad input stored something"
    assert count("id LIKE 'bad-%' OR id LIKE 'many-%' OR id LIKE 'big-%'") == 0


def test_exactly_1000_events_and_1mib_ok():
    """The limits themselves are accepted."""
    r = S.ingest([event(i, id="thousand-%d" % i) for i in range(1000)])
    assert r.status == 200 and r.json()["new"] == 1000, r
    # A body of exactly 1 MiB (JSON may end in whitespace) is accepted...
    body = json.dumps([event(i, id="mib-%d" % i) for i in range(50)])
    exact = body + " " * (1048576 - len(body))
    ctype = {"Content-Type": "application/json"}
    r = S.post("/api/v1/events", exact, headers=ctype)
    assert r.status == 200 and r.json()["new"] == 50, r
    # ...and one byte more is not, and stores nothing.
    body = json.dumps([event(i, id="mib1-%d" % i) for i in range(50)])
    r = S.post("/api/v1/events", body + " " * (1048577 - len(body)),
               headers=ctype)
    assert r.status == 413, r
    assert count("id LIKE 'mib1-%'") == 0


def test_auth():
    """No key or a wrong key is 401; a role that may not is 403."""
    r = S.ingest(event(1, id="auth-1"), key=None)
    assert r.status == 401 and r.json()["error"]["code"] == "unauthorized", r
    r = S.ingest(event(1, id="auth-1"), key="tt_" + "0" * 40)
    assert r.status == 401, r
    r = S.ingest(event(1, id="auth-1"), key="garbage")
    assert r.status == 401, r
    read = S.create_key("read")
    ingest = S.create_key("ingest")
    r = S.ingest(event(1, id="auth-1"), key=read)
    assert r.status == 403, r
    assert S.get("/api/v1/live/stats", key=ingest).status == 403
    assert S.ingest(event(1, id="auth-1"), key=ingest).status == 200
    assert S.get("/api/v1/live/stats", key=read).status == 200
    assert S.get("/api/v1/keys", key=read).status == 403
    assert count("id = 'auth-1'") == 1


def test_keys_api_and_cli():
    """Keys are shown once, listed without the key, revoked by DELETE."""
    r = S.post("/api/v1/keys", {"role": "read", "workspace": "team-a",
                                "name": "dash"})
    assert r.status == 201, r
    k = r.json()
    assert k["key"].startswith("tt_") and k["prefix"] == k["key"][:11], k
    listing = S.get("/api/v1/keys").json()["keys"]
    mine = [x for x in listing if x["id"] == k["id"]][0]
    assert "key" not in mine and mine["prefix"] == k["prefix"], mine
    assert k["key"] not in json.dumps(listing)
    # Stored hashed, never in clear.
    import hashlib
    rows = S.query("SELECT hash FROM api_keys WHERE id = ?", (k["id"],))
    assert rows[0][0] == hashlib.sha256(k["key"].encode()).hexdigest()
    assert S.get("/api/v1/live/stats", key=k["key"]).status == 200
    r = S.request("DELETE", "/api/v1/keys/%d" % k["id"])
    assert r.status == 200, r
    assert S.get("/api/v1/live/stats", key=k["key"]).status == 401
    assert S.request("DELETE", "/api/v1/keys/999999").status == 404
    assert S.post("/api/v1/keys", {"role": "root"}).status == 400
    r = S.post("/api/v1/keys", {"role": "read", "workspace": "Bad Name"})
    assert r.status == 400 and r.json()["error"]["field"] == "workspace", r
    # The same from the shell.
    out = S.tokentap("key", "create", "--role", "ingest", "--workspace",
                     "team-b", "--data", S.data).stdout
    key = [l.split()[1] for l in out.splitlines() if l.startswith("key:")][0]
    assert S.ingest(event(1, id="cli-key"), key=key).status == 200
    out = S.tokentap("key", "list", "--data", S.data).stdout
    assert "team-b" in out and key not in out, out


def test_workspaces_are_separate():
    """A key of another workspace sees none of default's numbers."""
    key = S.create_key("admin", workspace="team-c")
    assert S.ingest([event(i, id="wsc-%d" % i) for i in range(3)],
                    key=key).status == 200
    # The same ids in default are new there too.
    assert S.ingest([event(i, id="wsc-%d" % i) for i in range(3)]
                    ).json()["new"] == 3
    S.wait_second_closed()
    st = S.stats("1h", key=key)
    assert st["totals"]["requests"] == 3, st
    feed = S.get("/api/v1/live/feed?limit=1000", key=key).json()
    assert {e["id"] for e in feed["requests"]} == {"wsc-0", "wsc-1", "wsc-2"}


def test_feed_newest_first():
    """The feed lists the most recent requests, newest first."""
    assert S.ingest([event(i, id="feed-%d" % i) for i in range(5)]
                    ).status == 200
    r = S.get("/api/v1/live/feed?limit=5")
    assert r.status == 200, r
    ids = [e["id"] for e in r.json()["requests"]]
    assert ids == ["feed-4", "feed-3", "feed-2", "feed-1", "feed-0"], ids
    assert S.get("/api/v1/live/feed?limit=0").status == 400
    assert S.get("/api/v1/live/feed?limit=abc").status == 400


def test_feed_keeps_long_unicode_fields():
    """Long multi-byte strings are cut on a character boundary in the feed,
    and the stored event keeps them whole."""
    user = "ü" * 60  # 120 bytes: longer than the feed keeps
    assert S.ingest(event(1, id="utf8-long", user=user,
                          agent="агент-" * 10)).status == 200
    feed = S.get("/api/v1/live/feed?limit=5").json()
    assert feed["count"] == len(feed["requests"]), feed
    mine = [e for e in feed["requests"] if e["id"] == "utf8-long"][0]
    assert mine["user"] and user.startswith(mine["user"]), mine["user"]
    assert S.query("SELECT user FROM events WHERE id = 'utf8-long'"
                   ) == [(user,)]


def test_price_override_is_used():
    """An operator's DATA/pricing.json overrides the shipped price."""
    with open(os.path.join(S.data, "pricing.json"), "w") as f:
        json.dump({"models": [{"provider": "openai", "model": "gpt-4o",
                               "input": 1000, "output": 2000,
                               "date": "2026-11-01"}]}, f)
    os.kill(S.pid("collector"), signal.SIGTERM)
    time.sleep(0.3)
    assert S.wait_ready(10)
    deadline = time.time() + 10
    while time.time() < deadline:
        r = S.ingest(event(1, id="override-1", model="gpt-4o",
                           input_tokens=1000, output_tokens=1000))
        if r.status == 200:
            break
        time.sleep(0.1)
    assert r.status == 200, r
    cost = S.query("SELECT cost_usd FROM events WHERE id = 'override-1'")
    assert abs(cost[0][0] - 3.0) < 1e-9, cost  # 1000*1000/1e6 + 1000*2000/1e6
    cat = S.get("/api/v1/pricing").json()["models"]
    g = [m for m in cat if m["model"] == "gpt-4o" and
         m["provider"] == "openai"][0]
    assert g["source"] == "override" and g["input"] == 1000, g


def test_pricing_and_unknown_models():
    """The catalog is served; unknown models count tokens at cost 0."""
    cat = S.get("/api/v1/pricing").json()
    assert len(cat["models"]) >= 20, cat
    assert S.ingest(event(1, id="unk-1", provider="local",
                          model="my-own-llm")).status == 200
    rows = S.query("SELECT cost_usd, cost_source, input_tokens FROM events "
                   "WHERE id = 'unk-1'")
    assert rows == [(0.0, 2, 101)], rows
    unk = S.get("/api/v1/pricing/unknown").json()["models"]
    assert any(m["model"] == "my-own-llm" and m["events"] >= 1
               for m in unk), unk


def test_bad_bytes_in_query_and_path_are_400_and_404():
    """Invalid UTF-8 quoted back in an error is cleaned, not a 500."""
    for path, status in (("/api/v1/live/stats?window=%ff", 400),
                         ("/api/v1/live/stats?window=" + "%C3%A9" * 40, 400),
                         ("/api/v1/live/feed?limit=%ff", 400),
                         ("/api/v1/nope%ff", 404),
                         ("/api/v1/keys?workspace=%ff", 400)):
        r = S.get(path)
        assert r.status == status, (path, r)
        assert r.json()["error"]["message"], r
    # A collector command's message quoting cut multi-byte input is valid.
    r = S.post("/api/v1/keys", {"role": "é" * 40})
    assert r.status == 400 and "role" in r.json()["error"]["message"], r


def test_large_key_listing_then_more_commands():
    """A collector reply larger than a socket buffer arrives whole, and the
    same worker connections keep working afterwards."""
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda i: S.create_key("read", "bulk", "k%04d" % i),
                    range(1200)))
    r = S.get("/api/v1/keys")
    assert r.status == 200, r
    keys = r.json()["keys"]
    assert len([k for k in keys if k["workspace"] == "bulk"]) == 1200
    for _ in range(20):  # reach every worker thread's connection
        assert S.get("/api/v1/keys?workspace=bulk").status == 200
        assert S.ingest(event(1, id="after-list")).status == 200


def test_long_provider_names_do_not_starve_other_workspaces():
    """One workspace with many long, distinct provider names fills only its
    share of the live slots; another workspace still gets live numbers."""
    evs = [event(i, id="longp-%d" % i, provider="p%03d-" % i + "x" * 100)
           for i in range(150)]
    assert S.ingest(evs).status == 200
    key = S.create_key("admin", workspace="latecomer")
    assert S.ingest(event(1, id="late-1"), key=key).status == 200
    S.wait_second_closed()
    st = S.stats("1h", key=key)
    assert st["requests"] == 1 and st["models"], st
    mine = S.stats("1h")
    assert sum(p["requests"] for p in mine["providers"]) == mine["requests"]


def test_checkpoints_move_the_wal_into_the_database():
    """Under sustained ingest the WAL is checkpointed into the database
    file and starts over, so it stays bounded (it once grew forever from a
    fresh start).  Its own stack: the first start is the case that broke."""
    import concurrent.futures
    with Stack() as s:
        db = os.path.join(s.data, "tokentap.db")
        wal = db + "-wal"
        start = os.path.getsize(db)

        def post(n):
            return s.ingest([event(i, id="ckpt-%d-%d" % (n, i),
                                   user="u" * 40, agent="a" * 40)
                             for i in range(1000)]).status
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            assert set(ex.map(post, range(250))) == {200}
        deadline = time.time() + 10
        while (time.time() < deadline and
               os.path.getsize(db) < start + (40 << 20)):
            time.sleep(0.2)
        grown = os.path.getsize(db) - start
        assert grown >= 40 << 20, "database file grew %d bytes" % grown
        # 250,000 rows are about 100 MB of WAL frames; a WAL that starts
        # over after each RESTART checkpoint stays well below that.
        assert os.path.getsize(wal) < 96 << 20, os.path.getsize(wal)


def test_routes_health_and_errors():
    """Unknown route 404, wrong method 405, health endpoints answer."""
    r = S.get("/api/v1/nothing")
    assert r.status == 404 and r.json()["error"]["code"] == "not_found", r
    r = S.request("DELETE", "/api/v1/events")
    assert r.status == 405 and "POST" in r.headers.get("allow", ""), r
    assert S.get("/api/v1/live/stats?window=2m").status == 400
    assert S.get("/api/v1/live/stats?bogus=1").status == 400
    for path in ("/health", "/healthz", "/health/live", "/health/ready"):
        r = S.get(path, key=None)
        assert r.status == 200, (path, r)
    ready = S.get("/health/ready", key=None).json()
    assert ready["components"]["collector"]["status"] == "ok", ready
    assert ready["db_bytes"] > 0 and "memory" in ready, ready
    assert ready["uptime_s"] >= 0
    st = S.stats()
    assert st["stale"] is False and st["generation"] > 0, st
    assert "x-request-id" in r.headers, r.headers
    rid = S.get("/api/v1/nothing", headers={"X-Request-ID": "abc-123"})
    assert rid.headers.get("x-request-id") == "abc-123", rid.headers


def main():
    global S
    with Stack() as s:
        S = s
        failed = run_tests([test_single_and_batch_read_back_exact,
                   test_percentiles_match_raw_rows,
                   test_duplicates_are_not_stored_twice,
                   test_bad_input_changes_nothing,
                   test_exactly_1000_events_and_1mib_ok,
                   test_auth, test_keys_api_and_cli,
                   test_workspaces_are_separate, test_feed_newest_first,
                   test_pricing_and_unknown_models,
                   test_feed_keeps_long_unicode_fields,
                   test_price_override_is_used,
                   test_bad_bytes_in_query_and_path_are_400_and_404,
                   test_large_key_listing_then_more_commands,
                   test_long_provider_names_do_not_starve_other_workspaces,
                   test_checkpoints_move_the_wal_into_the_database,
                   test_routes_health_and_errors], s)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
