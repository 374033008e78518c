"""Self-test of receivers.py (not an e2e test: the runner only picks up
test_*.py).  Starts every kind of receiver on loopback and talks to it with
the standard library only; prints "receivers: ok" and exits 0, or prints
the failure and exits 1.

    python3 tests/e2e/receivers_selftest.py
"""
import email.message
import http.client
import json
import os
import smtplib
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

from receivers import HttpReceiver, SmtpReceiver, hostname_for_loopback


def post(url, body=b'{"a":1}', headers=None, timeout=5):
    """POST with urllib; returns (status, headers, body) even for errors."""
    req = urllib.request.Request(url, data=body, method="POST", headers=dict(
        {"Content-Type": "application/json"}, **(headers or {})))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def check(cond, what):
    if not cond:
        raise AssertionError(what)


# ---------------------------------------------------------------- HTTP

def http_recording(h):
    t0, w0 = time.monotonic(), time.time()
    st, hd, body = post(h.url("/hook?x=1"), b'{"event":"fired"}',
                        {"X-Tokentap-Signature": "abc"})
    check(st == 200 and json.loads(body) == {"ok": True}, (st, body))
    check(hd["Content-Type"] == "application/json", hd)
    [r] = h.wait_for(1, path="/hook")
    check(r.method == "POST" and r.path == "/hook", r)
    check(r.target == "/hook?x=1" and r.query == {"x": ["1"]}, r.target)
    check(r.headers["x-tokentap-signature"] == "abc", r.headers)
    check(r.headers["content-type"] == "application/json", r.headers)
    check(all(k == k.lower() for k in r.headers), r.headers)
    check(r.body == b'{"event":"fired"}' and r.json() == {"event": "fired"},
          r.body)
    check(t0 <= r.monotonic <= time.monotonic(), "monotonic")
    check(w0 - 1 <= r.time <= time.time() + 1, "time")
    check(r.status == 200 and r.client[0].startswith("127."), r.client)
    # copies: changing what we got does not change the record
    r.headers["x"] = "y"
    check("x" not in h.requests("/hook")[0].headers, "not a copy")
    check(h.url() == "http://127.0.0.2:%d/hook" % h.port, h.url())


def http_fail_n_times(h):
    h.plan("/flaky", [500, 500])
    got = [post(h.url("/flaky"))[0] for _ in range(3)]
    check(got == [500, 500, 200], got)
    h.plan("/codes", [400, 404, (201, {"X-Id": "7"}, {"id": 7}),
                      (202, {"Content-Type": "text/plain"}, "queued")])
    st, _, _ = post(h.url("/codes"))
    check(st == 400, st)
    st, _, _ = post(h.url("/codes"))
    check(st == 404, st)
    st, hd, body = post(h.url("/codes"))
    check(st == 201 and hd["X-Id"] == "7" and json.loads(body) == {"id": 7},
          (st, body))
    st, hd, body = post(h.url("/codes"))
    check(st == 202 and body == b"queued" and
          hd["Content-Type"] == "text/plain", (st, body))
    check([r.status for r in h.requests("/codes")] == [400, 404, 201, 202],
          h.requests("/codes"))
    # other paths are not affected by a plan
    check(post(h.url("/other"))[0] == 200, "plan leaked")
    # a callable answer sees the request
    h.plan("/echo", [lambda req: (200, {}, req.body[::-1])])
    check(post(h.url("/echo"), b"abc")[2] == b"cba", "callable")


def http_retry_after(h):
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    h.plan("/rl", [("retry_after", 7), ("retry_after", date)])
    st, hd, _ = post(h.url("/rl"))
    check(st == 429 and hd["Retry-After"] == "7", (st, dict(hd)))
    st, hd, _ = post(h.url("/rl"))
    check(st == 429 and hd["Retry-After"] == date, (st, dict(hd)))
    check(post(h.url("/rl"))[0] == 200, "plan not exhausted")


def http_hang(h):
    ev = threading.Event()
    h.plan("/slow", [("hang", ev)])
    result = {}

    def client():
        t = time.monotonic()
        result["status"] = post(h.url("/slow"), timeout=10)[0]
        result["took"] = time.monotonic() - t

    th = threading.Thread(target=client)
    th.start()
    [r] = h.wait_for(1, path="/slow", timeout=5)   # recorded before answer
    check(r.status is None, "answered while hanging: %r" % r)
    time.sleep(0.4)
    check(th.is_alive() and "status" not in result, "hang did not hold")
    ev.set()
    th.join(5)
    check(result.get("status") == 200 and result["took"] >= 0.4, result)
    check(h.requests("/slow")[0].status == 200, h.requests("/slow"))


def http_hang_released_by_stop():
    h = HttpReceiver()
    h.plan("/stuck", [("hang", threading.Event())])
    out = {}

    def client():
        try:
            out["r"] = post(h.url("/stuck"), timeout=10)[0]
        except Exception as e:       # either answered or cut: both fine
            out["r"] = e

    th = threading.Thread(target=client)
    th.start()
    h.wait_for(1, path="/stuck", timeout=5)
    t = time.monotonic()
    h.stop()
    th.join(5)
    check(not th.is_alive() and "r" in out, "stop left the client hanging")
    check(time.monotonic() - t < 3, "stop too slow")
    # the port is really closed
    s = socket.socket()
    try:
        s.settimeout(2)
        check(s.connect_ex((h.host, h.port)) != 0, "still listening")
    finally:
        s.close()
    h.stop()                          # idempotent


def http_close(h):
    h.plan("/drop", [("close",)])
    c = http.client.HTTPConnection(h.host, h.port, timeout=5)
    try:
        c.request("POST", "/drop", body=b"x")
        c.getresponse()
        raise AssertionError("got a response from a closed connection")
    except http.client.RemoteDisconnected:
        pass
    finally:
        c.close()
    check(h.requests("/drop")[0].status == "close", h.requests("/drop"))
    check(post(h.url("/drop"))[0] == 200, "after close")


def http_keepalive_chunked_default(h):
    c = http.client.HTTPConnection(h.host, h.port, timeout=5)
    c.request("PUT", "/ka", body=b"one")
    r1 = c.getresponse()
    r1.read()
    c.request("POST", "/ka", body=iter([b"tw", b"o-", b"chunked"]),
              encode_chunked=True)
    r2 = c.getresponse()
    r2.read()
    c.close()
    reqs = h.requests("/ka")
    check([(r.method, r.body) for r in reqs] ==
          [("PUT", b"one"), ("POST", b"two-chunked")], reqs)
    check(reqs[0].client == reqs[1].client, "not one connection")
    check(reqs[1].headers["transfer-encoding"] == "chunked", reqs[1].headers)
    h.set_default(503)
    check(post(h.url("/anything"))[0] == 503, "set_default")
    h.plan("/anything", [204])
    check(post(h.url("/anything"))[0] == 204, "plan over default")
    check(post(h.url("/anything"))[0] == 503, "default after plan")
    h.set_default(200)
    try:
        h.plan("/bad", [("nonsense",)])
        raise AssertionError("bad plan accepted")
    except ValueError:
        pass


def http_wait_for_timeout(h):
    t = time.monotonic()
    try:
        h.wait_for(1, path="/never", timeout=0.3)
        raise AssertionError("wait_for did not time out")
    except AssertionError as e:
        check("wanted 1 request" in str(e), str(e))
    check(time.monotonic() - t < 2, "timeout too slow")
    n = len(h.requests())
    got = h.wait_for(n, timeout=1)
    check(len(got) == n, "wait_for return")


def http_by_name():
    name = hostname_for_loopback()
    addrs = {i[4][0] for i in socket.getaddrinfo(name, None)}
    check(addrs and addrs <= {"127.0.0.1", "::1"}, (name, addrs))
    with HttpReceiver(host="127.0.0.1") as h:
        st, _, _ = post("http://%s:%d/named" % (name, h.port))
        check(st == 200, st)
        check(h.wait_for(1, "/named")[0].headers["host"] ==
              "%s:%d" % (name, h.port), "host header")
    try:
        HttpReceiver(host="192.0.2.1")
        raise AssertionError("non-loopback bind accepted")
    except ValueError:
        pass
    return name


# ---------------------------------------------------------------- SMTP

def alternative(subject="Alert fired", to="ops@example.test"):
    m = email.message.EmailMessage()
    m["From"] = "tokentap@example.test"
    m["To"] = to
    m["Subject"] = subject
    m.set_content("plain text body\n")
    m.add_alternative("<p>html <b>body</b></p>\n", subtype="html")
    return m


def smtp_plain():
    with SmtpReceiver() as mx:
        check(mx.cafile is None and mx.port > 0, mx)
        with smtplib.SMTP(mx.host, mx.port, timeout=5) as s:
            s.ehlo("client.test")
            check(not s.has_extn("starttls"), "STARTTLS offered")
            s.send_message(alternative(), to_addrs=["a@example.test",
                                                   "b@example.test"])
        [m] = mx.wait_for(1)
        check(m.mail_from == "tokentap@example.test", m.mail_from)
        check(m.rcpt_tos == ["a@example.test", "b@example.test"], m.rcpt_tos)
        check(isinstance(m.content, bytes) and b"Subject: Alert fired"
              in m.content, m.content[:200])
        msg = m.message
        check(isinstance(msg, email.message.EmailMessage), type(msg))
        check(msg["Subject"] == "Alert fired", msg["Subject"])
        check(msg.get_content_type() == "multipart/alternative",
              msg.get_content_type())
        check(msg.get_body(("plain",)).get_content() == "plain text body\n",
              "plain part")
        check(msg.get_body(("html",)).get_content() ==
              "<p>html <b>body</b></p>\n", "html part")
        check([p.get_content_type() for p in msg.iter_parts()] ==
              ["text/plain", "text/html"], "parts")
        check(m.login is None and m.tls is False, (m.login, m.tls))

        # fail_next: temporary, then permanent
        mx.fail_next(2, code=451)
        for _ in range(2):
            with smtplib.SMTP(mx.host, mx.port, timeout=5) as s:
                try:
                    s.send_message(alternative("retry"))
                    raise AssertionError("451 not raised")
                except smtplib.SMTPDataError as e:
                    check(e.smtp_code == 451 and b"4.3.0" in e.smtp_error, e)
        with smtplib.SMTP(mx.host, mx.port, timeout=5) as s:
            s.send_message(alternative("retry"))
        mx.fail_next(1, code=550)
        with smtplib.SMTP(mx.host, mx.port, timeout=5) as s:
            try:
                s.send_message(alternative("refused"))
                raise AssertionError("550 not raised")
            except smtplib.SMTPDataError as e:
                check(e.smtp_code == 550, e)
            s.send_message(alternative("after 550"))
        got = [m.message["Subject"] for m in mx.wait_for(3)]
        check(got == ["Alert fired", "retry", "after 550"], got)
        rej = [(m.message["Subject"], m.response[:3]) for m in mx.rejected()]
        check(rej == [("retry", "451"), ("retry", "451"),
                      ("refused", "550")], rej)
        try:
            mx.wait_for(4, timeout=0.3)
            raise AssertionError("wait_for did not time out")
        except AssertionError as e:
            check("wanted 4 message" in str(e), str(e))


def smtp_auth_plaintext():
    with SmtpReceiver(auth=("user", "pass")) as mx:
        with smtplib.SMTP(mx.host, mx.port, timeout=5) as s:
            s.ehlo()
            check(set(s.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"},
                  s.esmtp_features)
            try:
                s.send_message(alternative("anonymous"))
                raise AssertionError("unauthenticated mail accepted")
            except smtplib.SMTPSenderRefused as e:
                check(e.smtp_code == 530, e)
            try:
                s.login("user", "wrong")
                raise AssertionError("wrong password accepted")
            except smtplib.SMTPAuthenticationError as e:
                check(e.smtp_code == 535, e)
        # PLAIN, explicitly
        with smtplib.SMTP(mx.host, mx.port, timeout=5) as s:
            s.ehlo()
            s.user, s.password = "user", "pass"
            code, _ = s.auth("PLAIN", s.auth_plain)
            check(code == 235, code)
            s.send_message(alternative("via plain"))
        # LOGIN, explicitly (with and without an initial response)
        for initial in (True, False):
            with smtplib.SMTP(mx.host, mx.port, timeout=5) as s:
                s.ehlo()
                s.user, s.password = "user", "pass"
                code, _ = s.auth("LOGIN", s.auth_login,
                                 initial_response_ok=initial)
                check(code == 235, code)
                s.send_message(alternative("via login"))
        msgs = mx.wait_for(3)
        check([m.login for m in msgs] == ["user"] * 3, msgs)
        att = mx.auth_attempts()
        # smtplib's login() tries PLAIN, then LOGIN
        check(att == [("PLAIN", "user", False), ("LOGIN", "user", False),
                      ("PLAIN", "user", True),
                      ("LOGIN", "user", True), ("LOGIN", "user", True)], att)


def smtp_starttls(name):
    with SmtpReceiver(starttls=True, auth=("user", "pass")) as mx:
        ctx = ssl.create_default_context(cafile=mx.cafile)
        with smtplib.SMTP(mx.host, mx.port, timeout=5) as s:
            s.ehlo()
            check(s.has_extn("starttls"), "no STARTTLS")
            check(not s.has_extn("auth"), "AUTH offered before TLS")
            s.starttls(context=ctx)
            s.ehlo()
            check(s.has_extn("auth") and not s.has_extn("starttls"),
                  s.esmtp_features)
            s.login("user", "pass")
            s.send_message(alternative("over starttls"))
        [m] = mx.wait_for(1)
        check(m.tls is True and m.login == "user", m)
        # an unverified certificate is refused by a default context
        with smtplib.SMTP(mx.host, mx.port, timeout=5) as s:
            try:
                s.starttls(context=ssl.create_default_context())
                raise AssertionError("self-signed cert trusted by default")
            except ssl.SSLCertVerificationError:
                pass
    # certificate verified by name; receiver bound where the name resolves
    with SmtpReceiver(host="127.0.0.1", starttls=True) as mx:
        ctx = ssl.create_default_context(cafile=mx.cafile)
        with smtplib.SMTP(name, mx.port, timeout=5) as s:
            s.starttls(context=ctx)
            s.send_message(alternative("by name"))
        check(mx.wait_for(1)[0].tls, "tls by name")


def smtp_smtps():
    with SmtpReceiver(smtps=True, auth=("user", "pass")) as mx:
        ctx = ssl.create_default_context(cafile=mx.cafile)
        with smtplib.SMTP_SSL(mx.host, mx.port, context=ctx, timeout=5) as s:
            s.ehlo()
            check(not s.has_extn("starttls"), "STARTTLS inside SMTPS")
            try:
                s.login("user", "nope")
                raise AssertionError("wrong password accepted")
            except smtplib.SMTPAuthenticationError as e:
                check(e.smtp_code == 535, e)
            s.login("user", "pass")
            s.send_message(alternative("over smtps"))
        [m] = mx.wait_for(1)
        check(m.tls is True and m.login == "user", m)
        # a plaintext client gets no SMTP banner from an SMTPS port
        try:
            smtplib.SMTP(mx.host, mx.port, timeout=1).quit()
            raise AssertionError("plaintext SMTP worked on SMTPS port")
        except (smtplib.SMTPServerDisconnected, OSError):
            pass
        cafile = mx.cafile
    check(not os.path.exists(cafile), "certificate left behind")


def main():
    t0 = time.monotonic()
    steps = []
    with HttpReceiver() as h:
        for f in (http_recording, http_fail_n_times, http_retry_after,
                  http_hang, http_close, http_keepalive_chunked_default,
                  http_wait_for_timeout):
            f(h)
            steps.append(f.__name__)
    http_hang_released_by_stop()
    name = http_by_name()
    smtp_plain()
    smtp_auth_plaintext()
    smtp_starttls(name)
    smtp_smtps()
    print("receivers: %d http checks, 4 smtp receivers, loopback name %r, "
          "%.1fs" % (len(steps) + 2, name, time.monotonic() - t0))
    print("receivers: ok")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        print("receivers: FAILED")
        sys.exit(1)
