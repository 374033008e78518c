"""End-to-end: GET /metrics through nginx.  It needs a read key and shows
only the key's workspace; `promtool check metrics` accepts it; counters,
token types, cost and both histograms equal what was ingested; budget,
alert and notification gauges equal the database; the counters survive a
collector restart while the histograms start again with the new
generation; and a real Prometheus server on loopback, scraping every
second with a key, answers PromQL queries with the ingested numbers."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from stack import Stack, free_port, run_tests, wait_for

S = None
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")

# The events of workspace pm-a: (model, provider, n, fields).
EVENTS_A = [
    ("gpt-4o", "openai", 3, {"input_tokens": 100, "output_tokens": 20,
                             "cache_read_tokens": 7, "cache_write_tokens": 3,
                             "cost_usd": 0.25, "latency_ms": 300,
                             "ttft_ms": 50}),
    ("gpt-4o", "openai", 1, {"input_tokens": 5, "status": 500,
                             "error_type": "server_error",
                             "cost_usd": 0.125, "latency_ms": 3000}),
    ("claude-x", "anthropic", 2, {"input_tokens": 11, "output_tokens": 13,
                                  "cost_usd": 0.5, "latency_ms": 700,
                                  "ttft_ms": 200}),
]


def workspace(name, role="read"):
    admin = S.create_key("admin", workspace=name, name=name + "-admin")
    if role == "admin":
        return admin, admin
    return admin, S.create_key(role, workspace=name, name=name + "-" + role)


def ingest(key, spec):
    evs = []
    for model, provider, n, fields in spec:
        for _ in range(n):
            e = {"provider": provider, "model": model}
            e.update(fields)
            evs.append(e)
    r = S.ingest(evs, key=key)
    assert r.status in (200, 201, 202), r
    assert r.json()["new"] == len(evs), r


def eq(got, want, what):
    assert got == want, "%s: got %r, want %r" % (what, got, want)




def unescape(s):
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)),
                  s)


LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def parse(text):
    """The samples of an exposition: {(name, frozenset(labels)): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, "bad line %r" % line
        labels = frozenset((k, unescape(v))
                           for k, v in LABEL.findall(m.group(2) or ""))
        key = (m.group(1), labels)
        assert key not in out, "duplicate series %r" % line
        out[key] = float(m.group(3))
    return out


def scrape(key):
    r = S.get("/metrics", key=key)
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.body.decode(), parse(r.body.decode())


def value(samples, name, **labels):
    want = set(labels.items())
    got = [v for (n, ls), v in samples.items() if n == name and want <= ls]
    return sum(got) if got else None


def expected(spec):
    """Per model: requests, errors, tokens by type, cost, latencies, TTFTs."""
    exp = {}
    for model, provider, n, f in spec:
        e = exp.setdefault(model, {"provider": provider, "requests": 0,
                                   "errors": 0, "cost": 0.0, "lat": [],
                                   "ttft": [], "tokens": {
                                       "input": 0, "output": 0,
                                       "cache_read": 0, "cache_write": 0}})
        e["requests"] += n
        if f.get("status", 200) >= 400 or f.get("error_type"):
            e["errors"] += n
        e["cost"] += n * f.get("cost_usd", 0)
        for t in e["tokens"]:
            e["tokens"][t] += n * f.get(t + "_tokens", 0)
        e["lat"] += [f["latency_ms"] / 1000.0] * n if "latency_ms" in f else []
        e["ttft"] += [f["ttft_ms"] / 1000.0] * n if "ttft_ms" in f else []
    return exp


def check_histogram(samples, name, ws, model, values):
    base = {"workspace": ws, "model": model}
    eq(value(samples, name + "_count", **base), len(values),
       "%s_count of %s" % (name, model))
    got_sum = value(samples, name + "_sum", **base)
    assert abs(got_sum - sum(values)) < 1e-6, \
        "%s_sum of %s: got %r, want %r" % (name, model, got_sum, sum(values))
    buckets = {dict(ls)["le"]: v for (n, ls), v in samples.items()
               if n == name + "_bucket" and set(base.items()) <= ls}
    eq(buckets["+Inf"], len(values), "%s +Inf of %s" % (name, model))
    for le, v in buckets.items():
        bound = float("inf") if le == "+Inf" else float(le)
        eq(v, sum(1 for x in values if x <= bound),
           "%s le=%s of %s" % (name, le, model))


def test_auth_and_workspaces():
    _, ka = workspace("pm-auth-a")
    _, kb = workspace("pm-auth-b")
    ingest_key = S.create_key("ingest", workspace="pm-auth-a", name="ing")
    assert S.get("/metrics", key=None).status == 401
    assert S.get("/metrics", key=ingest_key).status == 403
    assert S.get("/metrics?x=1", key=ka).status == 400
    ingest(ingest_key, [("only-a", "openai", 2, {"input_tokens": 1})])
    S.wait_second_closed()
    _, a = scrape(ka)
    _, b = scrape(kb)
    eq(value(a, "tokentap_requests_total", model="only-a"), 2, "own calls")
    eq(value(b, "tokentap_requests_total", model="only-a"), None,
       "another workspace's calls")
    for samples, ws in ((a, "pm-auth-a"), (b, "pm-auth-b")):
        for (n, ls) in samples:
            d = dict(ls)
            assert d.get("workspace", ws) == ws, (n, d)
    # Health series are the same for every key.
    eq(value(b, "tokentap_collector_up"), 1, "collector_up")
    eq(value(a, "tokentap_shm_generation"),
       value(b, "tokentap_shm_generation"), "generation")


def test_promtool_accepts():
    if PROMTOOL is None:
        raise AssertionError("promtool is not installed (Debian: prometheus)")
    admin, key = workspace("pm-lint")
    # Label values that need escaping.
    ingest(admin, [('we"ird\\model', "openai", 1, {"latency_ms": 10,
                                                   "ttft_ms": 1})])
    S.wait_second_closed()
    text, samples = scrape(key)
    eq(value(samples, "tokentap_requests_total", model='we"ird\\model'), 1,
       "calls of an escaped model")
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and not r.stdout.strip() and \
        not r.stderr.strip(), (r.returncode, r.stdout, r.stderr)


def test_values_match_ingested():
    admin, key = workspace("pm-a")
    ingest(admin, EVENTS_A)
    S.wait_second_closed()
    _, samples = scrape(key)
    for model, e in expected(EVENTS_A).items():
        lab = {"workspace": "pm-a", "provider": e["provider"], "model": model}
        eq(value(samples, "tokentap_requests_total", **lab), e["requests"],
           "requests of " + model)
        eq(value(samples, "tokentap_request_errors_total", **lab),
           e["errors"], "errors of " + model)
        eq(value(samples, "tokentap_cost_usd_total", **lab), e["cost"],
           "cost of " + model)
        for t, n in e["tokens"].items():
            eq(value(samples, "tokentap_tokens_total", type=t, **lab), n,
               "%s tokens of %s" % (t, model))
        check_histogram(samples, "tokentap_request_duration_seconds", "pm-a",
                        model, e["lat"])
        check_histogram(samples, "tokentap_time_to_first_token_seconds",
                        "pm-a", model, e["ttft"])
    assert value(samples, "tokentap_ingest_events_total",
                 outcome="stored") >= 6
    assert value(samples, "tokentap_commits_total") >= 1
    assert value(samples, "tokentap_database_size_bytes") > 0
    busy = value(samples, "tokentap_api_workers", state="busy")
    idle = value(samples, "tokentap_api_workers", state="idle")
    assert busy >= 1 and idle >= 1, (busy, idle)


def test_budgets_alerts_notifications():
    admin, key = workspace("pm-b")
    r = S.request("PUT", "/api/v1/budgets", key=admin, body={"budgets": [
        {"period": "day", "limit_usd": 2, "thresholds": [50, 80, 100]},
        {"period": "month", "limit_usd": 10, "provider": "openai"}]})
    assert r.status == 200, r
    r = S.post("/api/v1/channels", {"name": "inbox", "type": "in_app"},
               key=admin)
    assert r.status == 201, r
    channel = r.json()["id"]
    r = S.request("POST", "/api/v1/alerts/rules", key=admin, body={
        "name": "errors", "window": "5m", "severity": "high",
        "channels": [channel],
        "condition": {"op": "and", "conditions": [
            {"metric": "requests", "operator": ">=", "threshold": 3},
            {"metric": "error_rate", "operator": ">", "threshold": 50}]}})
    assert r.status == 201, r
    ingest(admin, [("m", "openai", 4, {"status": 500, "cost_usd": 0.25}),
                   ("m", "mistral_ai", 1, {"cost_usd": 0.5})])

    def firing():
        _, s = scrape(key)
        return value(s, "tokentap_alerts", state="firing",
                     severity="high") == 1 and s
    samples = wait_for(firing)
    ids = {}
    for b in S.get("/api/v1/budgets", key=key).json()["budgets"]:
        ids[b["period"]] = str(b["id"])
    eq(value(samples, "tokentap_budget_limit_usd", budget=ids["day"]), 2,
       "day limit")
    eq(value(samples, "tokentap_budget_spend_usd", budget=ids["day"]), 1.5,
       "day spend")
    eq(value(samples, "tokentap_budget_used_ratio", budget=ids["day"]), 0.75,
       "day ratio")
    eq(value(samples, "tokentap_budget_spend_usd", budget=ids["month"],
             period="month", provider="openai"), 1.0, "openai month spend")
    # Alerts: the gauges equal the table (the budget's crossed threshold
    # is an alert too).
    rows = {(st, sev): n for st, sev, n in S.query(
        "SELECT status, severity, count(*) FROM alerts a JOIN workspaces w "
        "ON w.id = a.ws WHERE w.name = 'pm-b' GROUP BY 1, 2")}
    got = {(dict(ls)["state"], dict(ls)["severity"]): v
           for (n, ls), v in samples.items() if n == "tokentap_alerts"}
    assert len(got) == 16 and rows, (got, rows)
    assert all(got[k] == rows.get(k, 0) for k in got), (got, rows)
    # Notifications: the gauges equal the table, status by status.
    wait_for(lambda: S.query("SELECT count(*) FROM notifications n JOIN "
                             "workspaces w ON w.id = n.ws WHERE w.name = "
                             "'pm-b'")[0][0] > 0)

    def notes_match():
        _, s = scrape(key)
        rows = dict(S.query(
            "SELECT status, count(*) FROM notifications n JOIN workspaces w "
            "ON w.id = n.ws WHERE w.name = 'pm-b' GROUP BY 1"))
        got = {st: value(s, "tokentap_notifications", status=st)
               for st in ("pending", "retrying", "sent", "failed")}
        return all(got[st] == rows.get(st, 0) for st in got) and \
            sum(got.values()) > 0
    wait_for(notes_match)


def test_restart_keeps_counters_restarts_histograms():
    admin, key = workspace("pm-r")
    ingest(admin, [("r-model", "openai", 3, {"input_tokens": 4,
                                             "latency_ms": 100})])
    S.wait_second_closed()
    _, before = scrape(key)
    gen = value(before, "tokentap_shm_generation")
    eq(value(before, "tokentap_request_duration_seconds_count",
             model="r-model"), 3, "latency count before a restart")
    col = S.pid("collector")
    os.kill(col, signal.SIGKILL)
    wait_for(lambda: S.pid("collector") not in (None, col))
    assert S.wait_ready(15)
    ingest(admin, [("r-model", "openai", 1, {"input_tokens": 4,
                                             "latency_ms": 100})])
    S.wait_second_closed()
    _, after = scrape(key)
    assert value(after, "tokentap_shm_generation") != gen
    eq(value(after, "tokentap_requests_total", model="r-model"), 4,
       "calls across a restart")
    eq(value(after, "tokentap_tokens_total", model="r-model", type="input"),
       16, "input tokens across a restart")
    # The histograms count since the new collector started.
    eq(value(after, "tokentap_request_duration_seconds_count",
             model="r-model"), 1, "latency count after a restart")
    assert value(after, "tokentap_latency_start_time_seconds") >= \
        value(after, "tokentap_collector_start_time_seconds") - 1


def prom_query(port, q):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (
        port, urllib.parse.urlencode({"query": q}))
    with urllib.request.urlopen(url, timeout=10) as f:
        d = json.load(f)
    assert d["status"] == "success", d
    return {tuple(sorted(x["metric"].items())): float(x["value"][1])
            for x in d["data"]["result"]}


def test_prometheus_scrapes():
    if PROMETHEUS is None:
        raise AssertionError("prometheus is not installed (Debian package)")
    admin, key = workspace("pm-p")
    spec = [("p-one", "openai", 5, {"input_tokens": 10, "output_tokens": 2,
                                    "cost_usd": 0.5, "latency_ms": 250}),
            ("p-two", "anthropic", 2, {"input_tokens": 3, "status": 429,
                                       "cost_usd": 0.25, "latency_ms": 1000,
                                       "ttft_ms": 90})]
    ingest(admin, spec)
    d = tempfile.mkdtemp(prefix="tt-prom-")
    port = free_port()
    with open(os.path.join(d, "prometheus.yml"), "w") as f:
        f.write("global:\n"
                "  scrape_interval: 1s\n"
                "  scrape_timeout: 1s\n"
                "scrape_configs:\n"
                "  - job_name: tokentap\n"
                "    metrics_path: /metrics\n"
                "    authorization:\n"
                "      type: Bearer\n"
                "      credentials: %s\n"
                "    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % (key, S.port))
    log = open(os.path.join(d, "prometheus.log"), "w")
    p = subprocess.Popen([PROMETHEUS,
                          "--config.file=" + os.path.join(d, "prometheus.yml"),
                          "--storage.tsdb.path=" + os.path.join(d, "data"),
                          "--web.listen-address=127.0.0.1:%d" % port],
                         stdout=log, stderr=subprocess.STDOUT)
    ok = False
    try:
        def target_up():
            try:
                with urllib.request.urlopen(
                        "http://127.0.0.1:%d/api/v1/targets" % port,
                        timeout=5) as f:
                    t = json.load(f)["data"]["activeTargets"]
            except OSError:
                return False
            return len(t) == 1 and t[0]["health"] == "up"
        wait_for(target_up, 30)
        exp = expected(spec)
        want = {
            'sum by (model) (tokentap_requests_total{workspace="pm-p"})':
                {m: e["requests"] for m, e in exp.items()},
            'sum by (model) (tokentap_request_errors_total{workspace="pm-p"})':
                {m: e["errors"] for m, e in exp.items()},
            'sum by (model) (tokentap_tokens_total{workspace="pm-p",'
            'type="input"})': {m: e["tokens"]["input"] for m, e in exp.items()},
            'sum by (model) (tokentap_cost_usd_total{workspace="pm-p"})':
                {m: e["cost"] for m, e in exp.items()},
            'sum by (model) (tokentap_request_duration_seconds_count'
            '{workspace="pm-p"})': {m: len(e["lat"]) for m, e in exp.items()},
            'sum by (model) (tokentap_request_duration_seconds_bucket'
            '{workspace="pm-p",le="0.32"})':
                {m: sum(1 for x in e["lat"] if x <= 0.32)
                 for m, e in exp.items()},
        }
        last = {}

        def all_match():
            for q, w in want.items():
                got = {dict(k)["model"]: v
                       for k, v in prom_query(port, q).items()}
                last[q] = got
                if set(got) != set(w) or any(abs(got[m] - w[m]) > 1e-9
                                             for m in w):
                    return False
            return True
        try:
            wait_for(all_match, 20)
        except AssertionError:
            raise AssertionError("Prometheus disagrees: %r" % {
                q: (last.get(q), w) for q, w in want.items()})
        up = prom_query(port, 'up{job="tokentap"}')
        assert list(up.values()) == [1.0], up
        ok = True
    finally:
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
        if not ok:
            with open(os.path.join(d, "prometheus.log")) as f:
                print("---- prometheus.log ----")
                sys.stdout.writelines(f.readlines()[-30:])
        shutil.rmtree(d, ignore_errors=True)


def main():
    global S
    with Stack(sets=["alert_eval_interval=1"]) as s:
        S = s
        failed = run_tests([test_auth_and_workspaces,
                            test_promtool_accepts,
                            test_values_match_ingested,
                            test_budgets_alerts_notifications,
                            test_prometheus_scrapes,
                            test_restart_keeps_counters_restarts_histograms],
                           s)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
