"""End-to-end: notifications delivered by tt-notify to real receivers on
loopback (tests/e2e/receivers.py: an HTTP receiver that records requests
and can fail, throttle or hang; an aiosmtpd SMTP server with STARTTLS and
login).  Channels keep their secrets write-only; a firing rule reaches
Slack, PagerDuty, an Alertmanager-format webhook and email with the
payloads each expects, and PagerDuty follows the alert through acknowledge
and resolve with one dedup_key; retries back off and honour Retry-After;
4xx are not retried; a slow channel is paced, not dropped; a failing
channel fails over to the fallback and is disabled after its run of
failures (the inbox says why); the SSRF guard refuses loopback in every
spelling and redirects are not followed; a dispatcher killed mid-delivery
delivers after its restart."""
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time

from receivers import HttpReceiver, SmtpReceiver, hostname_for_loopback
from stack import Stack, run_tests, wait_for

S = None
HOOK = None   # HttpReceiver on 127.0.0.2 (allowed)
LOCAL = None  # HttpReceiver on 127.0.0.1 (refused: loopback)
MX = None     # SmtpReceiver, STARTTLS + login
MXS = None    # SmtpReceiver, SMTPS (TLS from the first byte)

SECRETS = ["tok-3f9a-SECRET", "sign-77c1-SECRET", "hdr-51be-SECRET",
           "pw-0d2e-SECRET", "rk-8a4f-SECRET", "slack-6c3d-SECRET"]


def workspace(name):
    return S.create_key("admin", workspace=name, name=name)


def channel(key, name, type_, **config):
    r = S.post("/api/v1/channels", {"name": name, "type": type_,
                                    "config": config}, key=key)
    assert r.status == 201, r
    return r.json()


def send_test(key, cid):
    r = S.post("/api/v1/channels/%d/test" % cid, {}, key=key)
    assert r.status == 200, r
    return r.json()


def history(key, **q):
    qs = "&".join("%s=%s" % kv for kv in q.items())
    r = S.get("/api/v1/notifications/history" + ("?" + qs if qs else ""),
              key=key)
    assert r.status == 200, r
    return r.json()["notifications"]


def test_secrets_are_write_only():
    key = workspace("n-sec")
    hook = channel(key, "hook", "webhook",
                   url=HOOK.url("/sec") + "?token=" + SECRETS[0],
                   secret=SECRETS[1],
                   headers={"Authorization": "Bearer " + SECRETS[2]})
    mail = channel(key, "mail", "email",
                   smtp_url="smtp://%s:%d" % (MX.host, MX.port),
                   username="tt", password=SECRETS[3],
                   **{"from": "alerts@tokentap.test"}, to=["oncall@x.test"])
    pd = channel(key, "pd", "pagerduty", routing_key=SECRETS[4],
                 events_url=HOOK.url("/pd"))
    slack = channel(key, "slack", "slack",
                    webhook_url="https://hooks.slack.test/services/"
                    + SECRETS[5])
    shown = json.dumps([hook, mail, pd, slack,
                        S.get("/api/v1/channels", key=key).json()])
    for s in SECRETS:
        assert s not in shown, s
    assert hook["config"]["secret"] == "********"
    assert hook["config"]["headers"] == {"Authorization": "********"}
    assert hook["config"]["url"] == HOOK.url("/********?********")
    assert mail["config"]["password"] == "********"
    assert pd["config"]["routing_key"] == "********"
    # The redacted config sent back keeps the secrets; the name changes.
    r = S.request("PUT", "/api/v1/channels/%d" % hook["id"],
                  body={"name": "renamed", "config": hook["config"]}, key=key)
    assert r.status == 200 and r.json()["name"] == "renamed", r
    out = send_test(key, hook["id"])
    assert out["delivered"] is True, out
    req = HOOK.wait_for(1, path="/sec")[-1]
    assert req.query == {"token": [SECRETS[0]]}, req.query
    assert req.headers["authorization"] == "Bearer " + SECRETS[2]
    # A bad config names its field, without echoing a secret.
    r = S.post("/api/v1/channels", {"name": "bad", "type": "webhook",
                                    "config": {"url": "ftp://x.test/",
                                               "secret": SECRETS[1]}},
               key=key)
    assert r.status == 400 and r.json()["error"]["field"] == "config.url", r
    assert SECRETS[1] not in r.body.decode()
    # Another destination: the stored secrets do not follow it unless sent
    # again.
    moved = dict(hook["config"], url="http://127.0.0.3:9/x")
    r = S.request("PUT", "/api/v1/channels/%d" % hook["id"],
                  body={"config": moved}, key=key)
    assert r.status == 400, r
    assert r.json()["error"]["field"] in ("config.secret", "config.headers",
                                          "config.headers.Authorization"), r


def test_webhook_signed_test_message_and_inbox():
    key = workspace("n-sig")
    hook = channel(key, "signed", "webhook", url=HOOK.url("/signed"),
                   secret="s3cret")
    out = send_test(key, hook["id"])
    assert out["delivered"] is True, out
    n = out["notification"]
    assert n["status"] == "sent" and n["event"] == "test"
    assert n["tries"][0]["code"] == 200, n
    req = HOOK.wait_for(1, path="/signed")[-1]
    assert req.headers["x-tokentap-delivery"] == str(n["id"])
    t, v1 = [p.split("=", 1)[1] for p in
             req.headers["x-tokentap-signature"].split(",")]
    want = hmac.new(b"s3cret", t.encode() + b"." + req.body,
                    hashlib.sha256).hexdigest()
    assert hmac.compare_digest(v1, want)
    assert abs(int(t) - time.time()) < 60
    body = req.json()
    assert body["event"] == "test", body
    # In-app: the inbox, unread, then read.
    app = channel(key, "app", "in_app")
    assert send_test(key, app["id"])["delivered"] is True
    box = S.get("/api/v1/notifications/inbox?unread=true", key=key).json()
    assert [i["kind"] for i in box["inbox"]] == ["test"], box
    r = S.post("/api/v1/notifications/inbox/read", {"all": True}, key=key)
    assert r.status == 200 and r.json()["changed"] == 1, r
    box = S.get("/api/v1/notifications/inbox?unread=true", key=key).json()
    assert box["inbox"] == []


def test_alert_reaches_every_receiver():
    key = workspace("n-all")
    slack = channel(key, "slack", "slack", webhook_url=HOOK.url("/slack"),
                    min_interval_ms=0)
    pd = channel(key, "pd", "pagerduty", routing_key="R0UTING",
                 events_url=HOOK.url("/pd"))
    am = channel(key, "am", "webhook", url=HOOK.url("/am"),
                 format="alertmanager")
    mail = channel(key, "mail", "email",
                   smtp_url="smtp://%s:%d" % (MX.host, MX.port),
                   starttls=True, username="tt", password="pw",
                   **{"from": "alerts@tokentap.test"},
                   to=["oncall@x.test", "lead@x.test"])
    app = channel(key, "app", "in_app")
    r = S.request("PUT", "/api/v1/channels/routes",
                  body={"critical": [app["id"]]}, key=key)
    assert r.status == 200, r
    r = S.post("/api/v1/alerts/rules", {
        "name": "Errors <high>", "severity": "critical", "window": "1m",
        "group_by": ["model"], "labels": {"team": "infra"},
        "description": "Too many errors",
        "condition": {"metric": "errors", "operator": ">=", "threshold": 3},
        "channels": [slack["id"], pd["id"], am["id"], mail["id"]]}, key=key)
    assert r.status == 201, r
    S.send_alike(key, "m-bad", 4, status=500)
    # Slack: blocks and the fallback text.
    s = HOOK.wait_for(1, path="/slack", timeout=20)[-1].json()
    assert "Errors <high>" in s["text"] and "firing" in s["text"].lower(), s
    types = [b["type"] for b in s["blocks"]]
    assert types[0] == "header" and "section" in types and \
        "context" in types, types
    # PagerDuty: trigger, severity mapped, summary, custom details.
    p = HOOK.wait_for(1, path="/pd")[-1].json()
    assert p["event_action"] == "trigger" and p["routing_key"] == "R0UTING"
    assert p["payload"]["severity"] == "critical"
    assert len(p["payload"]["summary"]) <= 1024
    dedup = p["dedup_key"]
    # Alertmanager v4.
    a = HOOK.wait_for(1, path="/am")[-1].json()
    assert a["version"] == "4" and a["status"] == "firing", a
    al = a["alerts"][0]
    assert al["labels"]["alertname"] == "Errors <high>"
    assert al["labels"]["severity"] == "critical"
    assert al["labels"]["model"] == "m-bad" and al["labels"]["team"] == "infra"
    assert al["startsAt"].endswith("Z") and al["fingerprint"], al
    # Email: STARTTLS, login, both parts, severity and name in the subject.
    m = MX.wait_for(1, timeout=20)[-1]
    assert m.tls and m.login == "tt"
    assert sorted(m.rcpt_tos) == ["lead@x.test", "oncall@x.test"]
    subj = str(m.message["Subject"])
    assert "CRITICAL" in subj.upper() and "Errors <high>" in subj, subj
    assert m.message.get_body(("plain",)) is not None
    html = m.message.get_body(("html",)).get_content()
    assert "Errors &lt;high&gt;" in html, html
    # Acknowledge, then resolve: PagerDuty follows with the same key.
    aid = S.get("/api/v1/alerts/active", key=key).json()["alerts"][0]["id"]
    r = S.post("/api/v1/alerts/%d/ack" % aid, {"who": "dana"}, key=key)
    assert r.status == 200, r
    p2 = HOOK.wait_for(2, path="/pd")[-1].json()
    assert p2["event_action"] == "acknowledge" and p2["dedup_key"] == dedup
    r = S.post("/api/v1/alerts/%d/resolve" % aid,
               {"who": "dana", "note": "rolled back"}, key=key)
    assert r.status == 200, r
    p3 = HOOK.wait_for(3, path="/pd")[-1].json()
    assert p3["event_action"] == "resolve" and p3["dedup_key"] == dedup
    a2 = HOOK.wait_for(3, path="/am")[-1].json()
    assert a2["status"] == "resolved", a2
    # The workspace's route for critical got it too (in-app: the inbox).
    box = S.get("/api/v1/notifications/inbox", key=key).json()["inbox"]
    assert [i["kind"] for i in box if i["alert_id"] == aid][-1] == \
        "firing", box
    got = wait_for(lambda: (lambda h: all(n["status"] == "sent" for n in h)
                            and h)(history(key, alert=aid, channel=pd["id"])))
    assert [n["event"] for n in got] == \
        ["resolved", "acknowledged", "firing"], got


def test_email_smtps_and_smtp_replies():
    key = workspace("n-smtps")
    c = channel(key, "smtps", "email",
                smtp_url="smtps://%s:%d" % (MXS.host, MXS.port),
                **{"from": "alerts@tokentap.test"}, to=["ops@x.test"])
    out = send_test(key, c["id"])
    assert out["delivered"] is True, out
    m = MXS.wait_for(1)[-1]
    assert m.tls and m.message.get_body(("html",)) is not None
    assert out["notification"]["tries"][0]["code"] == 250, out
    # 451 is tried again; 550 is not.
    MXS.fail_next(1, code=451)
    out = send_test(key, c["id"])
    assert out["notification"]["status"] == "retrying", out
    assert out["notification"]["last_code"] == 451, out
    wait_for(lambda: history(key, channel=c["id"])[0]["status"] == "sent")
    MXS.fail_next(1, code=550)
    out = send_test(key, c["id"])
    assert out["notification"]["status"] == "failed", out
    assert out["notification"]["last_code"] == 550, out


def test_retries_back_off_and_honour_retry_after():
    key = workspace("n-retry")
    c = channel(key, "flaky", "webhook", url=HOOK.url("/flaky"))
    HOOK.plan("/flaky", [500, 503, 200])
    out = send_test(key, c["id"])
    n = wait_for(lambda: (lambda x: x[0]["status"] == "sent" and x[0])(
        history(key, channel=c["id"])))
    assert [t["code"] for t in n["tries"]] == [500, 503, 200], n
    assert [t["outcome"] for t in n["tries"]] == ["retry", "retry", "sent"]
    reqs = HOOK.requests(path="/flaky")
    gaps = [b.monotonic - a.monotonic for a, b in zip(reqs, reqs[1:])]
    # notify_retry_base_ms=300: half to all of 300 ms, then of 600 ms.
    assert 0.14 <= gaps[0] and 0.29 <= gaps[1], gaps
    assert out["notification"]["status"] == "retrying", out
    # 429 with Retry-After: 2 waits at least 2 s.
    c2 = channel(key, "busy", "webhook", url=HOOK.url("/busy"))
    HOOK.plan("/busy", [("retry_after", 2), 200])
    send_test(key, c2["id"])
    reqs = HOOK.wait_for(2, path="/busy", timeout=10)
    assert reqs[1].monotonic - reqs[0].monotonic >= 1.95
    # Another 4xx is not tried again.
    c3 = channel(key, "gone", "webhook", url=HOOK.url("/gone"))
    HOOK.plan("/gone", [404])
    out = send_test(key, c3["id"])
    assert out["delivered"] is False
    assert out["notification"]["status"] == "failed", out
    time.sleep(1)
    assert len(HOOK.requests(path="/gone")) == 1
    assert history(key, status="failed")[0]["last_code"] == 404


def test_one_alert_in_order():
    # The trigger fails twice; the acknowledgement enqueued meanwhile
    # waits for it, so the receiver never sees an ack before its trigger.
    key = workspace("n-order")
    c = channel(key, "ordered", "webhook", url=HOOK.url("/ordered"))
    HOOK.plan("/ordered", [500, 500])
    r = S.post("/api/v1/alerts/rules", {
        "name": "ordered", "window": "1m", "channels": [c["id"]],
        "condition": {"metric": "errors", "operator": ">=", "threshold": 1}},
        key=key)
    assert r.status == 201, r
    S.send_alike(key, "m", 2, status=500)
    HOOK.wait_for(1, path="/ordered", timeout=20)
    aid = S.get("/api/v1/alerts/active", key=key).json()["alerts"][0]["id"]
    r = S.post("/api/v1/alerts/%d/ack" % aid, {"who": "dana"}, key=key)
    assert r.status == 200, r
    reqs = HOOK.wait_for(4, path="/ordered", timeout=20)
    time.sleep(0.5)
    events = [q.json()["event"] for q in HOOK.requests(path="/ordered")]
    assert events == ["firing", "firing", "firing", "acknowledged"], events


def test_slack_is_paced_not_dropped():
    key = workspace("n-pace")
    c = channel(key, "slack", "slack", webhook_url=HOOK.url("/paced"))
    assert c["config"]["min_interval_ms"] == 1000
    threads = [threading.Thread(target=send_test, args=(key, c["id"]))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reqs = HOOK.wait_for(3, path="/paced", timeout=10)
    gaps = [b.monotonic - a.monotonic for a, b in zip(reqs, reqs[1:])]
    assert all(g >= 0.9 for g in gaps), gaps


def test_fallback_then_disabled():
    key = workspace("n-fall")
    bad = channel(key, "bad", "webhook", url=HOOK.url("/bad"))
    fb = channel(key, "fallback", "webhook", url=HOOK.url("/fallback"))
    r = S.request("PUT", "/api/v1/channels/routes",
                  body={"fallback": [fb["id"]]}, key=key)
    assert r.status == 200 and r.json()["fallback"] == [fb["id"]], r
    HOOK.plan("/bad", [400] * 20)
    out = send_test(key, bad["id"])
    assert out["notification"]["status"] == "failed"
    req = HOOK.wait_for(1, path="/fallback")[-1]
    assert req.json()["event"] == "test"
    fbn = history(key, channel=fb["id"])[0]
    assert fbn["fallback_of"] == out["notification"]["id"], fbn
    # notify_disable_after=6: five more failures disable it.
    for _ in range(5):
        send_test(key, bad["id"])
    got = wait_for(lambda: (lambda c: not c["enabled"] and c)(
        S.get("/api/v1/channels/%d" % bad["id"], key=key).json()))
    assert "6 consecutive" in got["disabled_reason"], got
    assert "HTTP 400" in got["disabled_reason"], got
    box = S.get("/api/v1/notifications/inbox", key=key).json()["inbox"]
    assert box[0]["kind"] == "channel_disabled" and "bad" in box[0]["title"]
    # Disabled: its next notification fails over at once.
    before = len(HOOK.requests(path="/bad"))
    out = send_test(key, bad["id"])
    assert out["notification"]["last_error"] == "the channel is disabled"
    assert len(HOOK.requests(path="/bad")) == before
    # Enabled again: delivered.
    r = S.request("PUT", "/api/v1/channels/%d" % bad["id"],
                  body={"enabled": True}, key=key)
    assert r.status == 200 and r.json()["consecutive_failures"] == 0, r
    HOOK.plan("/bad", [])
    assert send_test(key, bad["id"])["delivered"] is True


def test_ssrf_guard():
    key = workspace("n-ssrf")
    port = LOCAL.port
    urls = ["http://127.1:%d/x" % port, "http://0x7f.0.0.1:%d/x" % port,
            "http://[::1]:%d/x" % port,
            "http://[::ffff:127.0.0.1]:%d/x" % port,
            "http://%s:%d/x" % (hostname_for_loopback(), port),
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1:%d/x" % port]
    for i, u in enumerate(urls):
        c = channel(key, "ssrf %d" % i, "webhook", url=u, timeout_ms=2000)
        out = send_test(key, c["id"])
        n = out["notification"]
        assert out["delivered"] is False and n["status"] == "failed", (u, n)
        assert n["last_error"].startswith("refused"), (u, n)
    assert LOCAL.requests() == []
    assert [q.target for q in HOOK.requests() if "://" in q.target] == []
    # A redirect is not followed.
    c = channel(key, "redirect", "webhook", url=HOOK.url("/redir"))
    HOOK.plan("/redir", [(302, {"Location": HOOK.url("/target")}, "")])
    out = send_test(key, c["id"])
    assert out["delivered"] is False, out
    assert "redirects are not followed" in out["notification"]["last_error"]
    time.sleep(0.5)
    assert HOOK.requests(path="/target") == []


def test_dispatcher_killed_mid_delivery():
    key = workspace("n-kill")
    c = channel(key, "slow", "webhook", url=HOOK.url("/slow"),
                timeout_ms=30000)
    ev = threading.Event()
    HOOK.plan("/slow", [("hang", ev)])
    # The test call waits for an outcome that will not come before the
    # kill: it runs aside.
    t = threading.Thread(target=S.post, args=(
        "/api/v1/channels/%d/test" % c["id"], {}), kwargs={"key": key})
    t.start()
    first = HOOK.wait_for(1, path="/slow")[0]
    old = S.pid("notify")
    os.kill(old, signal.SIGKILL)
    ev.set()
    second = HOOK.wait_for(2, path="/slow", timeout=20)[1]
    assert S.pid("notify") != old
    # The same notification, sent again: receivers deduplicate by it.
    assert second.headers["x-tokentap-delivery"] == \
        first.headers["x-tokentap-delivery"]
    n = wait_for(lambda: (lambda x: x[0]["status"] == "sent" and x[0])(
        history(key, channel=c["id"])))
    assert n["attempts"] == 1, n
    t.join()


def test_no_secret_in_logs():
    # The logs that saw the channels (the API's commands, the collector's,
    # the dispatcher's deliveries) are there and not empty.
    logdir = os.path.join(S.data, "log")
    names = os.listdir(logdir)
    for must in ("collector.log", "notify.log", "nginx-access.log"):
        assert must in names, names
        assert os.path.getsize(os.path.join(logdir, must)) > 0, must
    for name in names:
        with open(os.path.join(logdir, name), errors="replace") as f:
            text = f.read()
        for s in SECRETS:
            assert s not in text, (name, s)


def main():
    global S, HOOK, LOCAL, MX, MXS
    with HttpReceiver() as hook, HttpReceiver(host="127.0.0.1") as local, \
            SmtpReceiver(starttls=True, auth=("tt", "pw")) as mx, \
            SmtpReceiver(smtps=True) as mxs:
        HOOK, LOCAL, MX, MXS = hook, local, mx, mxs
        # Both servers' certificates, trusted through notify_ca_file.
        cas = os.path.join(os.path.dirname(mx.cafile), "both.pem")
        with open(cas, "w") as out:
            for f in (mx.cafile, mxs.cafile):
                with open(f) as inp:
                    out.write(inp.read())
        sets = ["alert_eval_interval=1",
                "notify_allow_networks=127.0.0.2/32",
                "notify_retry_base_ms=300", "notify_retry_max_ms=3000",
                "notify_max_attempts=4", "notify_disable_after=6",
                "notify_ca_file=" + cas]
        # A proxy in the environment must not carry deliveries around the
        # guard (which would judge the proxy's address): the receiver
        # plays one, and must see nothing but what is addressed to it.
        os.environ.update(http_proxy=hook.url("/via-proxy"),
                          https_proxy=hook.url("/via-proxy"),
                          ALL_PROXY=hook.url("/via-proxy"),
                          no_proxy="127.0.0.1,localhost")
        with Stack(sets=sets) as s:
            S = s
            failed = run_tests([test_secrets_are_write_only,
                                test_webhook_signed_test_message_and_inbox,
                                test_alert_reaches_every_receiver,
                                test_email_smtps_and_smtp_replies,
                                test_retries_back_off_and_honour_retry_after,
                                test_one_alert_in_order,
                                test_slack_is_paced_not_dropped,
                                test_fallback_then_disabled,
                                test_ssrf_guard,
                                test_dispatcher_killed_mid_delivery,
                                test_no_secret_in_logs], s)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
