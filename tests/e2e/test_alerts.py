"""End-to-end: the alert engine and the alert lifecycle through nginx, on a
stack evaluating every second.  A rule breaks and fires within two
cycles, for one group only; it is acknowledged; the condition clears and
it resolves by itself; `for` holds an alert pending first; a collector
killed mid-firing comes back with the same open alert and no duplicate;
manual resolve needs a note; bulk operations by ids and by filter;
statistics; CSV; a second workspace sees none of it; alerts reach the
event ring."""
import json
import os
import signal
import subprocess
import sys
import time

from stack import BUILD, Stack, run_tests, wait_for

S = None


def workspace(name):
    return S.create_key("admin", workspace=name, name=name)


def rule(key, **fields):
    r = S.request("POST", "/api/v1/alerts/rules", body=fields, key=key)
    assert r.status == 201, r
    return r.json()["id"]


def inbox_channels(key, n):
    ids = []
    for i in range(n):
        r = S.post("/api/v1/channels", {"name": "inbox %d" % i,
                                        "type": "in_app"}, key=key)
        assert r.status == 201, r
        ids.append(r.json()["id"])
    return ids


def active(key, **q):
    qs = "&".join("%s=%s" % kv for kv in q.items())
    r = S.get("/api/v1/alerts/active" + ("?" + qs if qs else ""), key=key)
    assert r.status == 200, r
    return r.json()["alerts"]


def alert(key, aid):
    r = S.get("/api/v1/alerts/%d" % aid, key=key)
    assert r.status == 200, r
    return r.json()


def ring():
    r = subprocess.run([os.path.join(BUILD, "collector", "tt-ctl"), "--data",
                        S.data, "ring", "--type", "alert"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


ERRORS = {"op": "and", "conditions": [
    {"metric": "requests", "operator": ">=", "threshold": 3},
    {"metric": "error_rate", "operator": ">", "threshold": 50}]}


def cycles():
    """The engine's evaluations so far (GET /health/ready)."""
    return S.get("/health/ready").json()["alert_engine"]["cycles"]


def test_fire_ack_resolve_by_itself():
    key = workspace("al-a")
    c1, c2 = inbox_channels(key, 2)
    rid = rule(key, name="errors by model", severity="high",
               condition=ERRORS, window="1m", group_by=["model"],
               channels=[c1, c2])
    wait_for(lambda: cycles() > 0)
    S.send_alike(key, "m-bad", 4, status=500)
    S.send_alike(key, "m-good", 5)
    c0 = cycles()
    got = wait_for(lambda: active(key), timeout=30)
    # Within two evaluation cycles of the events (counted, not timed: the
    # cycle in progress when they arrived may have missed them, and the
    # collector hands events over once a second).
    assert cycles() - c0 <= 3, (c0, cycles())
    assert len(got) == 1, got
    a = got[0]
    assert a["rule_id"] == rid and a["status"] == "firing"
    assert a["group"] == {"model": "m-bad"} and a["severity"] == "high"
    vals = {v["metric"]: v["value"] for v in a["values"]}
    assert vals == {"requests": 4, "error_rate": 100}, vals
    # Acknowledge: who and note recorded, a second ack is refused.
    r = S.post("/api/v1/alerts/%d/ack" % a["id"], {"note": "looking"},
               key=key)
    assert r.status == 200 and r.json()["changed"] == 1, r
    d = alert(key, a["id"])
    assert d["status"] == "acknowledged" and d["notes"] == "looking"
    assert d["acknowledged_by"].startswith("key ")
    r = S.post("/api/v1/alerts/%d/ack" % a["id"], {}, key=key)
    assert r.status == 409, r
    # The condition clears (the error rate falls under 50%): resolved by
    # the engine, without anyone.
    S.send_alike(key, "m-bad", 10)
    d = wait_for(lambda: (lambda x: x["status"] == "resolved" and x)(
        alert(key, a["id"])))
    assert d["resolved_by"] == "engine"
    assert [e["event"] for e in d["timeline"]] == \
        ["firing", "acknowledged", "resolved"], d["timeline"]
    assert d["timeline"][1]["note"] == "looking"
    # The outbox: one row per channel for firing, acknowledged, resolved,
    # written with each change, then delivered (in-app: the inbox).
    assert [(n["event"], n["channel_id"]) for n in d["notifications"]] == [
        ("firing", c1), ("firing", c2), ("acknowledged", c1),
        ("acknowledged", c2), ("resolved", c1), ("resolved", c2)], \
        d["notifications"]
    wait_for(lambda: all(n["status"] == "sent" for n in
                         alert(key, a["id"])["notifications"]))
    assert active(key) == []
    # The event ring carried firing, acknowledged and resolved.
    kinds = [e["event"]["type"] for e in ring()
             if e["event"].get("alert") == a["id"]]
    assert kinds == ["alert.firing", "alert.acknowledged",
                     "alert.resolved"], kinds
    # Breaking again opens a new alert, not the old one.
    S.send_alike(key, "m-bad", 40, status=500)
    again = wait_for(lambda: active(key))
    assert len(again) == 1 and again[0]["id"] != a["id"]


def test_for_holds_pending_first():
    key = workspace("al-b")
    rule(key, name="slow burn", condition=ERRORS, window="1m", **{"for": "3s"})
    S.send_alike(key, "m", 5, status=500)
    p = wait_for(lambda: active(key, status="pending"))
    assert len(p) == 1 and p[0]["fired_at"] is None
    f = wait_for(lambda: active(key, status="firing"), timeout=8)
    assert f[0]["id"] == p[0]["id"]
    fired = time.mktime(time.strptime(f[0]["fired_at"][:19],
                                      "%Y-%m-%dT%H:%M:%S"))
    started = time.mktime(time.strptime(f[0]["started_at"][:19],
                                        "%Y-%m-%dT%H:%M:%S"))
    assert fired - started >= 2, f[0]


def test_restart_mid_firing_no_duplicate():
    key = workspace("al-c")
    rule(key, name="restart", condition=ERRORS, window="5m")
    S.send_alike(key, "m", 6, status=500)
    a = wait_for(lambda: active(key))[0]
    col = S.pid("collector")
    os.kill(col, signal.SIGKILL)
    wait_for(lambda: S.pid("collector") not in (None, col), 15)
    assert S.wait_ready(15)
    time.sleep(3)  # a few cycles of the new collector
    now = active(key)
    assert [x["id"] for x in now] == [a["id"]], now
    assert now[0]["status"] == "firing"
    assert len(S.get("/api/v1/alerts", key=key).json()["alerts"]) == 1


def test_manual_resolve_bulk_delete_stats_csv():
    key = workspace("al-d")
    rid = rule(key, name="per model", condition=ERRORS, window="5m",
               group_by=["model"], description="payments team rule")
    for m in ("m1", "m2", "m3", "m4"):
        S.send_alike(key, m, 4, status=500)
    got = wait_for(lambda: len(active(key)) == 4 and active(key))
    ids = sorted(x["id"] for x in got)
    # Resolve needs a note.
    r = S.post("/api/v1/alerts/%d/resolve" % ids[0], {}, key=key)
    assert r.status == 400 and r.json()["error"]["field"] == "note", r
    r = S.post("/api/v1/alerts/%d/resolve" % ids[0],
               {"note": "rolled back", "who": "dana"}, key=key)
    assert r.status == 200 and r.json()["changed"] == 1, r
    d = alert(key, ids[0])
    assert d["status"] == "resolved" and d["resolved_by"] == "dana"
    assert d["notes"] == "rolled back"
    # Bulk ack by ids: the resolved one is not counted.
    r = S.post("/api/v1/alerts/bulk", {"action": "ack", "ids": ids[:3]},
               key=key)
    assert r.status == 200 and r.json()["changed"] == 2, r
    # Bulk resolve by filter: the acknowledged ones only.
    r = S.post("/api/v1/alerts/bulk", {
        "action": "resolve", "note": "bulk",
        "filter": {"status": "acknowledged"}}, key=key)
    assert r.status == 200 and sorted(r.json()["ids"]) == ids[1:3], r
    st = S.get("/api/v1/alerts/active", key=key).json()["alerts"]
    assert [x["id"] for x in st] == [ids[3]]
    # Text search over the rule's name and description.
    assert len(S.get("/api/v1/alerts?q=PAYMENTS",
                     key=key).json()["alerts"]) == 4
    assert S.get("/api/v1/alerts?q=nothing", key=key).json()["alerts"] == []
    assert len(S.get("/api/v1/alerts?rule=%d&status=resolved" % rid,
                     key=key).json()["alerts"]) == 3
    # Pagination, newest first.
    p1 = S.get("/api/v1/alerts?limit=3", key=key).json()
    p2 = S.get("/api/v1/alerts?limit=3&cursor=" + p1["next_cursor"],
               key=key).json()
    assert [x["id"] for x in p1["alerts"] + p2["alerts"]] == ids[::-1]
    assert p2["next_cursor"] is None
    # CSV.
    r = S.get("/api/v1/alerts?format=csv", key=key)
    assert r.status == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.body.decode().strip().split("\r\n")
    assert lines[0].startswith("id,rule_id,rule_name,severity,status")
    assert len(lines) == 5
    # Stats.
    s = S.get("/api/v1/alerts/stats?range=1h", key=key).json()
    assert s["total"] == 4
    assert s["by_status"] == {"pending": 0, "firing": 1, "acknowledged": 0,
                              "resolved": 3}, s
    assert s["mean_time_to_acknowledge_s"] is not None
    assert s["mean_time_to_resolve_s"] is not None
    # Delete; then it is gone.
    r = S.request("DELETE", "/api/v1/alerts/%d" % ids[0], key=key)
    assert r.status == 200 and r.json()["changed"] == 1, r
    assert S.get("/api/v1/alerts/%d" % ids[0], key=key).status == 404
    for bad in ("status=open", "severity=urgent", "rule=x", "limit=0",
                "colour=red"):
        assert S.get("/api/v1/alerts?" + bad, key=key).status == 400, bad
    r = S.post("/api/v1/alerts/bulk", {"action": "ack"}, key=key)
    assert r.status == 400, r
    # Deleting the rule resolves its open alert (it would never resolve).
    r = S.request("DELETE", "/api/v1/alerts/rules/%d" % rid, key=key)
    assert r.status == 200, r
    d = alert(key, ids[3])
    assert d["status"] == "resolved" and d["resolved_by"] == "rule", d
    assert d["timeline"][-1]["note"] == "the rule was deleted"
    time.sleep(2.5)  # the engine does not bring it back
    assert active(key) == []


def test_workspaces_apart():
    key = workspace("al-e")
    other = workspace("al-f")
    rule(key, name="mine", condition=ERRORS, window="1m")
    S.send_alike(key, "m", 5, status=500)
    a = wait_for(lambda: active(key))[0]
    assert active(other) == []
    assert S.get("/api/v1/alerts/%d" % a["id"], key=other).status == 404
    r = S.post("/api/v1/alerts/%d/ack" % a["id"], {}, key=other)
    assert r.status == 404, r
    r = S.post("/api/v1/alerts/bulk", {"action": "delete", "ids": [a["id"]]},
               key=other)
    assert r.status == 200 and r.json()["changed"] == 0, r
    assert alert(key, a["id"])["status"] == "firing"
    read = S.create_key("read", workspace="al-e", name="reader")
    assert S.post("/api/v1/alerts/%d/ack" % a["id"], {},
                  key=read).status == 403


def test_budget_thresholds_become_one_alert():
    key = workspace("al-g")
    r = S.request("PUT", "/api/v1/budgets", key=key, body={"budgets": [
        {"period": "day", "limit_usd": 1, "thresholds": [50, 80, 100]}]})
    assert r.status == 200, r
    bid = S.get("/api/v1/budgets", key=key).json()["budgets"][0]["id"]

    def spend(usd):
        r = S.request("POST", "/api/v1/events", key=key, body=[{
            "provider": "openai", "model": "m", "input_tokens": 1,
            "output_tokens": 1, "cost_usd": usd}])
        assert r.status in (200, 201, 202), r

    spend(0.6)
    a = wait_for(lambda: active(key))
    assert len(a) == 1 and a[0]["budget_id"] == bid and \
        a[0]["rule_id"] is None, a
    assert a[0]["severity"] == "low"  # 50%: below the 80% of "medium"
    spend(0.25)
    a = wait_for(lambda: (lambda x: x and x[0]["severity"] == "medium" and x)(
        active(key)))
    spend(0.2)
    a = wait_for(lambda: (lambda x: x and x[0]["severity"] == "critical" and
                          x)(active(key)))
    assert len(a) == 1, a  # one alert per budget and period
    v = a[0]["values"][0]
    assert v["metric"] == "budget_used_percent" and v["threshold"] == 100
    assert abs(v["value"] - 105) < 1e-6, v
    d = alert(key, a[0]["id"])
    assert [e["event"] for e in d["timeline"]] == \
        ["firing", "escalated", "escalated"], d["timeline"]
    assert len(S.get("/api/v1/alerts", key=key).json()["alerts"]) == 1
    kinds = [e["event"]["type"] for e in ring()
             if e["event"].get("alert") == a[0]["id"]]
    assert kinds == ["alert.firing", "alert.escalated", "alert.escalated"]


def test_alert_values_keep_a_budget_period():
    # An alert's values are its rule's conditions as written, so a monthly
    # budget condition says "month" (it once lost its period, and read as
    # the daily one).
    key = workspace("al-p")
    r = S.request("PUT", "/api/v1/budgets", key=key, body={"budgets": [
        {"period": "month", "limit_usd": 1000}]})
    assert r.status == 200, r
    rule(key, name="month budget", window="1m", condition={
        "metric": "budget_used_percent", "operator": ">=", "threshold": 0,
        "period": "month"})
    a = wait_for(lambda: active(key), timeout=30)
    assert a[0]["values"] == [{
        "metric": "budget_used_percent", "operator": ">=", "threshold": 0,
        "period": "month", "value": 0, "holds": True}], a[0]["values"]


def test_rule_test_changes_nothing():
    key = workspace("al-h")
    S.send_alike(key, "m-bad", 6, status=500)
    S.send_alike(key, "m-good", 6)
    body = {"name": "try", "condition": ERRORS, "window": "5m",
            "group_by": ["model"]}

    def tried():
        r = S.post("/api/v1/alerts/rules/test", body, key=key)
        assert r.status == 200, r
        return r.json()["groups"] == 2 and r.json()
    t = wait_for(tried)
    assert t["holds"] is True and t["holding"] == 1 and t["would"] == "fire"
    first = t["results"][0]
    assert first["group"] == {"model": "m-bad"} and first["holds"] is True
    c = first["condition"]
    assert c["op"] == "and" and c["holds"] is True
    assert [(x["metric"], x["value"], x["holds"]) for x in c["conditions"]] \
        == [("requests", 6, True), ("error_rate", 100, True)], c
    assert t["results"][1]["group"] == {"model": "m-good"}
    assert t["results"][1]["holds"] is False
    # A saved rule by id, with "for": it would go pending.
    rid = rule(key, **(body | {"name": "saved", "for": "5m"}))
    t = S.post("/api/v1/alerts/rules/test", {"id": rid}, key=key).json()
    assert t["would"] == "go pending", t
    # Nothing was stored or fired by the tests.
    time.sleep(2.5)
    got = S.get("/api/v1/alerts", key=key).json()["alerts"]
    assert all(a["rule_id"] == rid for a in got), got
    r = S.post("/api/v1/alerts/rules/test", body | {"window": "1s"}, key=key)
    assert r.status == 400 and r.json()["error"]["field"] == "window", r
    r = S.post("/api/v1/alerts/rules/test", {"id": 999999}, key=key)
    assert r.status == 404, r
    read = S.create_key("read", workspace="al-h", name="reader")
    assert S.post("/api/v1/alerts/rules/test", body, key=read).status == 200


def test_rule_tests_wait_apart_from_ingest():
    # The collector parks a rule test until the engine answers: many at
    # once (from every API worker) answer, 503 when the queue is full,
    # and ingest goes on meanwhile.
    from concurrent.futures import ThreadPoolExecutor
    key = workspace("al-par")
    S.send_alike(key, "m", 3)
    body = {"name": "many", "window": "30d", "group_by": ["model"],
            "condition": {"metric": "requests", "operator": ">", "threshold": 0}}
    wait_for(lambda: S.post("/api/v1/alerts/rules/test", body,
                            key=key).json()["holds"])

    def one_test(_):
        r = S.post("/api/v1/alerts/rules/test", body, key=key)
        assert r.status in (200, 503), r
        return r.status, r.json()

    def one_send(_):
        S.send_alike(key, "m", 5)
        return True
    with ThreadPoolExecutor(32) as pool:
        tests = [pool.submit(one_test, i) for i in range(40)]
        sends = [pool.submit(one_send, i) for i in range(20)]
        answers = [f.result() for f in tests]
        assert all(f.result() for f in sends)
    ok = [j for s, j in answers if s == 200]
    assert ok and all(j["holds"] is True for j in ok), answers
    for s, j in answers:
        if s == 503:
            assert j["error"]["code"] == "unavailable", j
    assert len(ok) + sum(s == 503 for s, _ in answers) == 40


def test_silences_hold_back_but_record():
    key = workspace("al-i")
    (ch,) = inbox_channels(key, 1)
    quiet = rule(key, name="quiet one", condition=ERRORS, window="5m",
                 group_by=["model"], labels={"team": "infra"}, channels=[ch])
    loud = rule(key, name="loud one", condition=ERRORS, window="5m",
                severity="critical", labels={"team": "payments"})
    r = S.post("/api/v1/silences", {
        "matchers": {"labels": {"team": "infra"}, "group": {"model": "m1"}},
        "duration": "1h", "comment": "deploying m1"}, key=key)
    assert r.status == 201, r
    sil = r.json()
    assert sil["state"] == "active" and sil["created_by"].startswith("key ")
    assert sil["matchers"] == {"group": {"model": "m1"},
                               "labels": {"team": "infra"}}
    for m in ("m1", "m2"):
        S.send_alike(key, m, 5, status=500)
    got = wait_for(lambda: len(active(key)) == 3 and active(key))
    by = {(a["rule_id"], a["group"].get("model")): a for a in got}
    # The alert the silence selects still fires, and says who held it.
    assert by[(quiet, "m1")]["status"] == "firing"
    assert by[(quiet, "m1")]["silenced_by"] == sil["id"]
    assert by[(quiet, "m2")]["silenced_by"] is None
    assert by[(loud, None)]["silenced_by"] is None
    d = alert(key, by[(quiet, "m1")]["id"])
    assert [e["event"] for e in d["timeline"]] == ["firing", "silenced"]
    # Silenced: nothing enqueued; the other group's notification is.
    assert d["notifications"] == []
    assert [n["event"] for n in
            alert(key, by[(quiet, "m2")]["id"])["notifications"]] == \
        ["firing"]
    ev = [e["event"] for e in ring()
          if e["event"].get("alert") == by[(quiet, "m1")]["id"]]
    assert ev and ev[0]["silenced_by"] == sil["id"], ev
    # Listing, expiring; an expired silence holds nothing back.
    lst = S.get("/api/v1/silences", key=key).json()["silences"]
    assert [x["id"] for x in lst] == [sil["id"]]
    r = S.request("DELETE", "/api/v1/silences/%d" % sil["id"], key=key)
    assert r.status == 200 and r.json()["state"] == "expired", r
    assert S.get("/api/v1/silences", key=key).json()["silences"] == []
    assert len(S.get("/api/v1/silences?state=expired",
                     key=key).json()["silences"]) == 1
    # Validation, roles, workspaces.
    for body, field in (
            ({"matchers": {}, "duration": "1h", "comment": "x"}, "matchers"),
            ({"matchers": {"severity": ["urgent"]}, "duration": "1h",
              "comment": "x"}, "matchers.severity[0]"),
            ({"matchers": {"rule": 1}, "comment": "x"}, "ends_at"),
            ({"matchers": {"rule": 1}, "duration": "1h"}, "comment"),
            ({"matchers": {"rule": 1}, "duration": "1h", "comment": "x",
              "color": 1}, "color")):
        r = S.post("/api/v1/silences", body, key=key)
        assert r.status == 400 and r.json()["error"]["field"] == field, \
            (field, r)
    read = S.create_key("read", workspace="al-i", name="reader")
    assert S.post("/api/v1/silences", {"matchers": {"rule": 1},
                                       "duration": "1h", "comment": "x"},
                  key=read).status == 403
    other = workspace("al-j")
    assert S.get("/api/v1/silences/%d" % sil["id"], key=other).status == 404
    assert S.request("DELETE", "/api/v1/silences/%d" % sil["id"],
                     key=other).status == 404


def test_quiet_hours_hold_back_below_critical():
    from datetime import datetime
    from zoneinfo import ZoneInfo
    key = workspace("al-k")
    # A window around now in Berlin: an hour away from now in UTC in
    # November, so a time zone ignored would miss it.
    local = datetime.now(ZoneInfo("Europe/Berlin"))
    m = local.hour * 60 + local.minute
    hhmm = lambda x: "%02d:%02d" % ((x % 1440) // 60, x % 60)
    r = S.request("PUT", "/api/v1/quiet-hours", key=key, body={
        "start": hhmm(m - 10), "end": hhmm(m + 10),
        "timezone": "Europe/Berlin"})
    assert r.status == 200, r
    assert r.json() == {"start": hhmm(m - 10), "end": hhmm(m + 10),
                        "timezone": "Europe/Berlin"}
    low = rule(key, name="medium one", condition=ERRORS, window="5m")
    crit = rule(key, name="critical one", condition=ERRORS, window="5m",
                severity="critical")
    S.send_alike(key, "m", 5, status=500)
    got = wait_for(lambda: len(active(key)) == 2 and active(key))
    by = {a["rule_id"]: a for a in got}
    assert by[low]["quiet_hours"] is True and by[low]["status"] == "firing"
    assert by[crit]["quiet_hours"] is False
    assert [e["event"] for e in alert(key, by[low]["id"])["timeline"]] == \
        ["firing", "silenced"]
    # Validation; clearing.
    for body, field in (({"start": "25:00", "end": "07:00",
                          "timezone": "UTC"}, "start"),
                        ({"start": "22:00", "end": "7", "timezone": "UTC"},
                         "end"),
                        ({"start": "22:00", "end": "07:00",
                          "timezone": "Mars/Olympus"}, "timezone"),
                        ({"start": "22:00", "end": "07:00",
                          "timezone": "../../etc/passwd"}, "timezone")):
        r = S.request("PUT", "/api/v1/quiet-hours", key=key, body=body)
        assert r.status == 400 and r.json()["error"]["field"] == field, \
            (field, r)
    r = S.request("DELETE", "/api/v1/quiet-hours", key=key)
    assert r.status == 200 and r.json() == {}, r
    assert S.get("/api/v1/quiet-hours", key=key).json() == {}


def main():
    global S
    with Stack(sets=["alert_eval_interval=1"]) as s:
        S = s
        failed = run_tests([test_fire_ack_resolve_by_itself,
                            test_for_holds_pending_first,
                            test_restart_mid_firing_no_duplicate,
                            test_manual_resolve_bulk_delete_stats_csv,
                            test_workspaces_apart,
                            test_budget_thresholds_become_one_alert,
                            test_alert_values_keep_a_budget_period,
                            test_rule_test_changes_nothing,
                            test_rule_tests_wait_apart_from_ingest,
                            test_silences_hold_back_but_record,
                            test_quiet_hours_hold_back_below_critical], s)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
