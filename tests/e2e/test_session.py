"""End-to-end: browser sessions.  POST /api/v1/session trades a key for an
HttpOnly, SameSite=Strict cookie (lifetime session_hours, set to 2 here);
the cookie alone then authenticates every route as its key would (roles,
workspace), also a live stream's handshake; a cookie request that is not
GET needs X-Requested-With: tokentap (403 csrf); a bad key gets no cookie;
a cookie changed anywhere, expired or of a revoked key is refused; an
Authorization header wins over the cookie; GET tells who is logged in;
DELETE clears the cookie even when it is invalid; the secret is
DIR/session.secret (0600, 32 bytes) and survives a restart of tt-api."""
import hashlib
import hmac
import os
import signal
import stat
import subprocess
import sys
import time

from stack import BUILD, Stack, run_tests, wait_for

S = None
XRW = {"X-Requested-With": "tokentap"}


def login(key):
    """POST the key; (response, cookie value or None, cookie attributes)."""
    r = S.post("/api/v1/session", {"key": key}, key=None)
    sc = r.headers.get("set-cookie")
    if sc is None:
        return r, None, {}
    parts = [p.strip() for p in sc.split(";")]
    name, _, value = parts[0].partition("=")
    assert name == "tt_session", sc
    attrs = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        attrs[k.lower()] = v
    return r, value, attrs


def with_cookie(method, path, tok, body=None, headers=None, key=None):
    h = {"Cookie": "theme=dark; tt_session=" + tok}
    h.update(headers or {})
    return S.request(method, path, body=body, key=key, headers=h)


def forge(key_id, exp):
    """A token made with the stack's own secret file."""
    with open(os.path.join(S.data, "session.secret"), "rb") as f:
        secret = f.read()
    msg = "%d.%d" % (key_id, exp)
    return msg + "." + hmac.new(secret, msg.encode(),
                                hashlib.sha256).hexdigest()


def test_login_sets_the_cookie():
    key = S.create_key("admin", workspace="sess-a", name="ui")
    t0 = time.time()
    r, tok, attrs = login(key)
    assert r.status == 201, r
    body = r.json()
    assert body["role"] == "admin" and body["workspace"] == "sess-a", body
    assert body["name"] == "ui" and isinstance(body["key_id"], int), body
    assert "httponly" in attrs and attrs.get("path") == "/", attrs
    assert attrs.get("samesite") == "Strict", attrs
    assert attrs.get("max-age") == "7200", attrs  # session_hours=2
    assert "secure" not in attrs, attrs  # plain http
    kid, exp, mac = tok.split(".")
    assert int(kid) == body["key_id"] and len(mac) == 64, tok
    assert abs(int(exp) - (t0 + 7200)) < 5, (exp, t0)
    assert body["expires_at"].startswith(
        time.strftime("%Y-%m-%dT%H:%M", time.gmtime(int(exp)))), body
    assert key not in r.body.decode(), r


def test_cookie_alone_authenticates():
    key = S.create_key("admin", workspace="sess-b", name="ui")
    _, tok, _ = login(key)
    r = with_cookie("GET", "/api/v1/live/stats", tok)
    assert r.status == 200, r
    r = with_cookie("GET", "/api/v1/keys", tok)
    assert r.status == 200, r
    r = with_cookie("GET", "/api/v1/session", tok)
    assert r.status == 200, r
    assert r.json()["workspace"] == "sess-b", r
    assert r.json()["expires_at"] is not None, r
    # Events sent with the cookie land in the cookie key's workspace.
    r = with_cookie("POST", "/api/v1/events", tok, headers=XRW,
                    body={"provider": "openai", "model": "m",
                          "input_tokens": 3})
    assert r.status in (200, 201, 202), r
    wait_for(lambda: S.stats(key=key)["requests"] == 1)
    # Without a cookie or a key: 401.
    r = S.get("/api/v1/session", key=None)
    assert r.status == 401, r
    assert r.json()["error"]["code"] == "unauthorized", r


def test_csrf_header_for_writes():
    key = S.create_key("admin", workspace="sess-c", name="ui")
    _, tok, _ = login(key)
    new = {"role": "read", "workspace": "sess-c", "name": "by-cookie"}
    r = with_cookie("POST", "/api/v1/keys", tok, body=new)
    assert r.status == 403, r
    assert r.json()["error"]["code"] == "csrf", r
    assert "X-Requested-With" in r.json()["error"]["message"], r
    r = with_cookie("POST", "/api/v1/keys", tok, body=new,
                    headers={"X-Requested-With": "XMLHttpRequest"})
    assert r.status == 403 and r.json()["error"]["code"] == "csrf", r
    n = S.query("SELECT count(*) FROM api_keys WHERE name = 'by-cookie'")
    assert n == [(0,)], n
    r = with_cookie("POST", "/api/v1/keys", tok, body=new, headers=XRW)
    assert r.status == 201, r
    # A key needs no such header.
    r = S.post("/api/v1/keys", new, key=key)
    assert r.status == 201, r
    # The cookie carries the key's role: a read key's may not write.
    _, rtok, _ = login(S.create_key("read", workspace="sess-c"))
    r = with_cookie("POST", "/api/v1/keys", rtok, body=new, headers=XRW)
    assert r.status == 403 and r.json()["error"]["code"] == "forbidden", r


def test_bad_keys_get_no_cookie():
    for bad in ("tt_" + "0" * 40, "tt_short", ""):
        r, tok, _ = login(bad)
        assert r.status == 401, (bad, r)
        assert tok is None and "set-cookie" not in r.headers, r.headers
        assert r.json()["error"]["code"] == "unauthorized", r
    r = S.post("/api/v1/session", {}, key=None)
    assert r.status == 400 and "set-cookie" not in r.headers, r
    r = S.post("/api/v1/session", {"key": 5}, key=None)
    assert r.status == 400 and "set-cookie" not in r.headers, r
    r = S.request("POST", "/api/v1/session", key=None,
                  body='{"key": "%s"}' % S.admin_key,
                  headers={"Content-Type": "text/plain"})
    assert r.status == 415 and "set-cookie" not in r.headers, r


def test_changed_or_expired_cookie_refused():
    key = S.create_key("read", workspace="sess-d")
    r, tok, _ = login(key)
    kid, exp, mac = tok.split(".")
    assert with_cookie("GET", "/api/v1/live/stats", tok).status == 200
    flip = "0" if mac[10] != "0" else "1"
    changed = [
        "%s.%s.%s" % (kid, exp, mac[:10] + flip + mac[11:]),
        "%s.%d.%s" % (kid, int(exp) + 3600, mac),
        "%d.%s.%s" % (int(kid) + 1, exp, mac),
        "%s.%s" % (kid, exp),
        "garbage",
    ]
    for bad in changed:
        r = with_cookie("GET", "/api/v1/live/stats", bad)
        assert r.status == 401, (bad, r)
        assert r.json()["error"]["code"] == "unauthorized", r
    # Made with the real secret, but expired: refused; not expired: works
    # (the cookie is exactly the documented HMAC under DIR/session.secret).
    now = int(time.time())
    r = with_cookie("GET", "/api/v1/live/stats", forge(int(kid), now - 2))
    assert r.status == 401, r
    r = with_cookie("GET", "/api/v1/live/stats", forge(int(kid), now + 60))
    assert r.status == 200, r
    # Of two tt_session cookies, a valid one is enough.
    r = S.get("/api/v1/live/stats", key=None,
              headers={"Cookie": "tt_session=junk; tt_session=" + tok})
    assert r.status == 200, r
    path = os.path.join(S.data, "session.secret")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_size == 32, st


def test_revoked_key_ends_its_sessions():
    r = S.post("/api/v1/keys", {"role": "read", "workspace": "sess-e",
                                "name": "soon-gone"})
    assert r.status == 201, r
    kid, key = r.json()["id"], r.json()["key"]
    _, tok, _ = login(key)
    assert with_cookie("GET", "/api/v1/live/stats", tok).status == 200
    assert with_cookie("GET", "/api/v1/live/stats", tok).status == 200
    r = S.request("DELETE", "/api/v1/keys/%d" % kid)
    assert r.status == 200, r
    r = with_cookie("GET", "/api/v1/live/stats", tok)
    assert r.status == 401, r
    r = with_cookie("GET", "/api/v1/session", tok)
    assert r.status == 401, r
    r, tok, _ = login(key)
    assert r.status == 401 and tok is None, r


def test_authorization_header_wins():
    _, tok, _ = login(S.create_key("admin", workspace="sess-f"))
    r = with_cookie("GET", "/api/v1/live/stats", tok, key="tt_" + "1" * 40)
    assert r.status == 401, r
    ing = S.create_key("ingest", workspace="sess-g")
    r = with_cookie("GET", "/api/v1/session", tok, key=ing)
    assert r.status == 200, r
    assert r.json()["role"] == "ingest" and r.json()["workspace"] == "sess-g"
    assert r.json()["expires_at"] is None, r
    # A key's POST needs no X-Requested-With, even with a cookie along.
    r = with_cookie("POST", "/api/v1/keys", tok, key=S.admin_key,
                    body={"role": "read", "workspace": "sess-f"})
    assert r.status == 201, r


def test_logout():
    _, tok, _ = login(S.create_key("read", workspace="sess-h"))
    for t in (tok, "not-a-token"):
        r = with_cookie("DELETE", "/api/v1/session", t)
        assert r.status == 204, r
        sc = r.headers.get("set-cookie", "")
        assert sc.startswith("tt_session=;"), sc
        assert "Max-Age=0" in sc and "HttpOnly" in sc and "Path=/" in sc, sc
        assert "SameSite=Strict" in sc, sc
    r = S.request("DELETE", "/api/v1/session", key=None)
    assert r.status == 204, r


def test_ws_token_and_stream_with_cookie():
    _, tok, _ = login(S.create_key("read", workspace="sess-i"))
    r = with_cookie("POST", "/api/v1/ws-token", tok, headers=XRW)
    assert r.status == 200, r
    assert r.json()["token"].startswith("sess-i."), r
    r = with_cookie("POST", "/api/v1/ws-token", tok)
    assert r.status == 403 and r.json()["error"]["code"] == "csrf", r
    # The browser's cookie goes along with the WebSocket handshake.
    cmd = [os.path.join(BUILD, "tools", "tt-ws"), "--url",
           "ws://127.0.0.1:%d/ws/live" % S.port, "--header",
           "Cookie: tt_session=" + tok, "--messages", "1", "--duration", "10"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=40)
    assert p.returncode == 0 and '"snapshot"' in p.stdout, (p.returncode,
                                                             p.stderr)
    bad = cmd[:]
    bad[4] = "Cookie: tt_session=" + tok[:-1] + ("0" if tok[-1] != "0"
                                                  else "1")
    p = subprocess.run(bad, capture_output=True, text=True, timeout=40)
    assert p.returncode != 0, p.stdout


def test_cookie_survives_api_restart():
    key = S.create_key("read", workspace="sess-j")
    _, tok, _ = login(key)
    with open(os.path.join(S.data, "session.secret"), "rb") as f:
        before = f.read()
    old = S.pid("api")
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: S.pid("api") not in (None, old), timeout=10)
    wait_for(lambda: S.get("/api/v1/live/stats", key=key).status == 200,
             timeout=10)
    r = with_cookie("GET", "/api/v1/session", tok)
    assert r.status == 200 and r.json()["workspace"] == "sess-j", r
    with open(os.path.join(S.data, "session.secret"), "rb") as f:
        assert f.read() == before


def main():
    global S
    with Stack(sets=["session_hours=2"]) as s:
        S = s
        failed = run_tests([test_login_sets_the_cookie,
                            test_cookie_alone_authenticates,
                            test_csrf_header_for_writes,
                            test_bad_keys_get_no_cookie,
                            test_changed_or_expired_cookie_refused,
                            test_revoked_key_ends_its_sessions,
                            test_authorization_header_wins,
                            test_logout,
                            test_ws_token_and_stream_with_cookie,
                            test_cookie_survives_api_restart], s)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
