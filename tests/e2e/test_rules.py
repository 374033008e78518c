"""End-to-end: alert rules through nginx.  Create, read, list (filters,
pagination), replace, toggle and delete; validation answering 400 with the
path of the bad node; names unique per workspace; read keys cannot write;
a second workspace sees none of it; rules survive a collector restart."""
import sys

from stack import Stack, run_tests

S = None

RULE = {
    "name": "gpt-4o errors",
    "description": "errors or slow answers on gpt-4o",
    "severity": "high",
    "condition": {"op": "and", "conditions": [
        {"metric": "requests", "operator": ">=", "threshold": 10},
        {"op": "or", "conditions": [
            {"metric": "error_rate", "operator": ">", "threshold": 5},
            {"metric": "latency_p95", "operator": ">", "threshold": 2000}]},
        {"metric": "budget_used_percent", "operator": ">=", "threshold": 80,
         "period": "month"}]},
    "window": "300s",
    "for": "2m",
    "cooldown": "15m",
    "group_by": ["model"],
    "filters": {"provider": "openai"},
    "no_data": "keep",
    "channels": [],
    "labels": {"team": "infra"},
    "annotations": {"runbook": "https://runbooks.example/llm-errors"},
}


def workspace(name):
    return S.create_key("admin", workspace=name, name=name)


def create(rule, key):
    return S.request("POST", "/api/v1/alerts/rules", body=rule, key=key)


def test_create_read_canonical():
    key = workspace("rules-a")
    ids = [S.post("/api/v1/channels", {"name": "c%d" % i, "type": "in_app"},
                  key=key).json()["id"] for i in range(2)]
    rule = RULE | {"channels": [ids[1], ids[0]]}
    r = create(rule, key)
    assert r.status == 201, r
    got = r.json()
    assert got["id"] > 0
    # Canonical: durations in their largest unit, defaults filled in.
    assert got["window"] == "5m" and got["for"] == "2m"
    assert got["cooldown"] == "15m" and got["renotify"] == "0s"
    assert got["enabled"] is True
    assert got["condition"] == RULE["condition"], got["condition"]
    leaf = got["condition"]["conditions"][2]
    assert leaf == {"metric": "budget_used_percent", "operator": ">=",
                    "threshold": 80, "period": "month"}, leaf
    for k in ("name", "description", "severity", "group_by", "filters",
              "no_data", "channels", "labels", "annotations"):
        assert got[k] == rule[k], (k, got[k])
    assert got["created_at"] == got["updated_at"]
    one = S.get("/api/v1/alerts/rules/%d" % got["id"], key=key)
    assert one.status == 200 and one.json() == got
    # A minimal rule: name and one condition.
    r = create({"name": "many calls", "condition": {
        "metric": "rps", "operator": ">", "threshold": 100}}, key)
    assert r.status == 201, r
    m = r.json()
    assert (m["severity"], m["window"], m["for"], m["no_data"]) == \
        ("medium", "5m", "0s", "ok")
    assert m["group_by"] == [] and m["filters"] == {} and m["labels"] == {}


BAD = [
    ({"condition": RULE["condition"]}, "name"),
    (RULE | {"severity": "urgent"}, "severity"),
    (RULE | {"color": "red"}, "color"),
    (RULE | {"condition": {"op": "xor", "conditions": []}}, "condition.op"),
    (RULE | {"condition": {"op": "and", "conditions": []}},
     "condition.conditions"),
    (RULE | {"condition": {"op": "or", "conditions": [
        {"metric": "cost", "operator": ">", "threshold": 1},
        {"metric": "cost", "operator": "=>", "threshold": 1}]}},
     "condition.conditions[1].operator"),
    (RULE | {"condition": {"op": "or", "conditions": [
        {"op": "and", "conditions": [
            {"metric": "cost", "operator": ">", "threshold": 1},
            {"metric": "costs", "operator": ">", "threshold": 1}]}]}},
     "condition.conditions[0].conditions[1].metric"),
    (RULE | {"condition": {"metric": "cost", "operator": ">",
                           "threshold": "1"}}, "condition.threshold"),
    (RULE | {"window": "30s"}, "window"),
    (RULE | {"window": "31d"}, "window"),
    (RULE | {"for": "5 minutes"}, "for"),
    (RULE | {"group_by": ["model", "model"]}, "group_by[1]"),
    (RULE | {"filters": {"region": "eu"}}, "filters.region"),
    (RULE | {"no_data": "ignore"}, "no_data"),
    (RULE | {"channels": ["slack"]}, "channels[0]"),
    (RULE | {"channels": [999999]}, "channels[0]"),
    (RULE | {"labels": {"team": 5}}, "labels.team"),
    (RULE | {"window": "2h", "filters": {"api_key": "k1"}}, "window"),
]


def nested(depth):
    """A condition nested depth levels deep (the leaf is the last level)."""
    node = {"metric": "errors", "operator": ">", "threshold": 0}
    for _ in range(depth - 1):
        node = {"op": "and", "conditions": [node]}
    return node


def test_validation_names_the_path():
    key = workspace("rules-b")
    for rule, path in BAD:
        r = create(rule, key)
        assert r.status == 400, (path, r)
        err = r.json()["error"]
        assert err["field"] == path, (path, err)
        assert path in err["message"], err
    r = create(RULE | {"for": "5 minutes"}, key)
    assert '"5 minutes"' in r.json()["error"]["message"]
    # Depth 5 and 32 leaves pass; 6 and 33 do not.
    assert create({"name": "d5", "condition": nested(5)}, key).status == 201
    r = create({"name": "d6", "condition": nested(6)}, key)
    assert r.status == 400 and r.json()["error"]["field"] == \
        "condition" + ".conditions[0]" * 5, r
    leaves = [{"metric": "errors", "operator": ">", "threshold": i}
              for i in range(33)]
    r = create({"name": "l32", "condition": {"op": "or",
                                             "conditions": leaves[:32]}}, key)
    assert r.status == 201, r
    r = create({"name": "l33", "condition": {"op": "or",
                                             "conditions": leaves}}, key)
    assert r.status == 400 and r.json()["error"]["field"] == \
        "condition.conditions[32]", r
    # Not JSON, not an object, wrong content type.
    r = S.request("POST", "/api/v1/alerts/rules", body="[1]", key=key,
                  headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["error"]["code"] == "invalid_json"
    r = S.request("POST", "/api/v1/alerts/rules", body="name=x", key=key,
                  headers={"Content-Type": "text/plain"})
    assert r.status == 415, r
    # Nothing was stored by the failures.
    names = {x["name"] for x in S.get("/api/v1/alerts/rules",
                                      key=key).json()["rules"]}
    assert names == {"d5", "l32"}, names


def test_update_toggle_delete():
    key = workspace("rules-c")
    rid = create(RULE, key).json()["id"]
    # PUT replaces the whole rule.
    r = S.request("PUT", "/api/v1/alerts/rules/%d" % rid, key=key,
                  body={"name": "renamed", "severity": "critical",
                        "condition": {"metric": "cost", "operator": ">",
                                      "threshold": 50}})
    assert r.status == 200, r
    got = r.json()
    assert got["id"] == rid and got["name"] == "renamed"
    assert got["severity"] == "critical" and got["group_by"] == []
    assert got["updated_at"] >= got["created_at"]
    r = S.request("PUT", "/api/v1/alerts/rules/%d" % rid, key=key,
                  body={"name": "renamed", "condition": {"metric": "x"}})
    assert r.status == 400 and r.json()["error"]["field"] == \
        "condition.metric", r
    assert S.get("/api/v1/alerts/rules/%d" % rid,
                 key=key).json()["severity"] == "critical"
    # Toggle: flip without a body, set with one.
    path = "/api/v1/alerts/rules/%d/toggle" % rid
    r = S.request("POST", path, key=key)
    assert r.status == 200 and r.json()["enabled"] is False, r
    r = S.request("POST", path, key=key)
    assert r.json()["enabled"] is True
    r = S.request("POST", path, key=key, body={"enabled": False})
    assert r.json()["enabled"] is False
    r = S.request("POST", path, key=key, body={"enabled": False})
    assert r.json()["enabled"] is False
    r = S.request("POST", path, key=key, body={"enabled": "no"})
    assert r.status == 400 and r.json()["error"]["field"] == "enabled", r
    # Names are unique in a workspace.
    assert create(RULE, key).status == 201
    r = create(RULE, key)
    assert r.status == 409 and r.json()["error"]["field"] == "name", r
    r = S.request("PUT", "/api/v1/alerts/rules/%d" % rid, key=key,
                  body=RULE)
    assert r.status == 409, r
    # Delete; then it is gone everywhere.
    r = S.request("DELETE", "/api/v1/alerts/rules/%d" % rid, key=key)
    assert r.status == 200 and r.json() == {"deleted": rid}, r
    for method, body in (("GET", None), ("DELETE", None),
                         ("PUT", RULE | {"name": "z"})):
        r = S.request(method, "/api/v1/alerts/rules/%d" % rid, key=key,
                      body=body)
        assert r.status == 404, (method, r)
    assert S.request("POST", path, key=key).status == 404
    assert S.get("/api/v1/alerts/rules/abc", key=key).status == 400


def test_list_filters_and_pages():
    key = workspace("rules-d")
    ids = []
    for i in range(7):
        r = create({"name": "r%d" % i, "severity": ("low", "high")[i % 2],
                    "enabled": i < 5,
                    "condition": {"metric": "errors", "operator": ">",
                                  "threshold": i}}, key)
        assert r.status == 201, r
        ids.append(r.json()["id"])
    seen, cursor = [], None
    while True:
        q = "/api/v1/alerts/rules?limit=3" + (
            "&cursor=" + cursor if cursor else "")
        page = S.get(q, key=key).json()
        assert len(page["rules"]) <= 3
        seen += [x["id"] for x in page["rules"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    hi = S.get("/api/v1/alerts/rules?severity=high", key=key).json()["rules"]
    assert [x["name"] for x in hi] == ["r1", "r3", "r5"]
    off = S.get("/api/v1/alerts/rules?enabled=false", key=key).json()["rules"]
    assert [x["name"] for x in off] == ["r5", "r6"]
    for q in ("limit=0", "limit=x", "enabled=yes", "severity=urgent",
              "cursor=-1", "colour=red"):
        assert S.get("/api/v1/alerts/rules?" + q, key=key).status == 400, q


def test_roles_and_workspaces():
    key = workspace("rules-e")
    other = workspace("rules-f")
    rid = create(RULE, key).json()["id"]
    read = S.create_key("read", workspace="rules-e", name="reader")
    assert S.get("/api/v1/alerts/rules/%d" % rid, key=read).status == 200
    assert create(RULE | {"name": "x"}, read).status == 403
    assert S.request("DELETE", "/api/v1/alerts/rules/%d" % rid,
                     key=read).status == 403
    # Another workspace neither sees nor changes it.
    assert S.get("/api/v1/alerts/rules", key=other).json()["rules"] == []
    assert S.get("/api/v1/alerts/rules/%d" % rid, key=other).status == 404
    assert S.request("DELETE", "/api/v1/alerts/rules/%d" % rid,
                     key=other).status == 404
    assert S.request("POST", "/api/v1/alerts/rules/%d/toggle" % rid,
                     key=other).status == 404
    # The same name in another workspace is fine.
    assert create(RULE, other).status == 201


def test_rules_survive_restart():
    key = workspace("rules-g")
    rid = create(RULE, key).json()["id"]
    before = S.get("/api/v1/alerts/rules/%d" % rid, key=key).json()
    S.tokentap("down", "--data", S.data)
    S.start()
    assert S.get("/api/v1/alerts/rules/%d" % rid, key=key).json() == before


def main():
    global S
    with Stack() as s:
        S = s
        failed = run_tests([test_create_read_canonical,
                            test_validation_names_the_path,
                            test_update_toggle_delete,
                            test_list_filters_and_pages,
                            test_roles_and_workspaces,
                            test_rules_survive_restart], s)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
