"""Real notification receivers on loopback for the end-to-end tests.

Nothing here leaves the machine: every server binds a loopback address
(127.0.0.2 by default, so it never collides with the stack on 127.0.0.1)
on an ephemeral port chosen by the kernel.

HTTP (webhooks, Slack-like endpoints, ...)::

    from receivers import HttpReceiver

    with HttpReceiver() as hook:              # started already
        url = hook.url("/hook")               # http://127.0.0.2:PORT/hook
        hook.plan("/hook", [500, 500])        # fail twice, then 200
        hook.plan("/slow", [("hang", ev)])    # hold open until ev.set()
        hook.plan("/limited", [("retry_after", 3)])  # 429, Retry-After: 3
        hook.plan("/drop", [("close",)])      # close without an answer
        hook.plan("/x", [(201, {"X-A": "1"}, {"id": 7})])  # full answer
        hook.set_default(503)                 # when no plan is left
        ... point tokentap at url ...
        reqs = hook.wait_for(3, path="/hook", timeout=10)
        reqs[0].method, reqs[0].path, reqs[0].headers["content-type"]
        reqs[0].body, reqs[0].json(), reqs[0].monotonic, reqs[0].time

  Every request is recorded when it arrives (before a planned hang), with
  header names lower-cased.  A plan is a list consumed one answer per
  request on that path (the path without its query string); once it is
  used up the default answer applies (200 ``{"ok":true}`` unless changed
  with set_default).  An answer may be:

  - an int status (200, 400, 404, 500, ...) with a small JSON body;
  - ``(status, headers, body)``: body is bytes, str, or JSON-encoded when
    it is a dict or list;
  - ``("retry_after", v)``: 429 with ``Retry-After: v`` (seconds as an
    int, or an HTTP date as a str or an aware datetime);
  - ``("hang", event)``: answer nothing until the threading.Event is set
    or the receiver stops, then 200;
  - ``("close",)``: close the connection without any answer;
  - a callable taking the recorded Request and returning one of the above.

SMTP (email channel)::

    from receivers import SmtpReceiver

    with SmtpReceiver(starttls=True, auth=("user", "pass")) as mx:
        mx.host, mx.port, mx.cafile           # cafile: the self-signed cert
        mx.fail_next(2, code=451)             # next 2 DATA: 451 4.3.0
        mx.fail_next(1, code=550)             # (replaces) next DATA: 550
        msgs = mx.wait_for(1, timeout=10)
        msgs[0].mail_from, msgs[0].rcpt_tos, msgs[0].content  # raw bytes
        msgs[0].message["Subject"]            # email.message.EmailMessage
        msgs[0].message.get_body(("html",))
        msgs[0].login, msgs[0].tls            # "user", True
        mx.rejected()                         # DATA refused by fail_next
        mx.auth_attempts()                    # [(mechanism, login, ok)]

  starttls=True offers STARTTLS, and AUTH is then only offered after it;
  smtps=True speaks TLS from the first byte (implicit TLS, "SMTPS").  Both
  use a certificate made at start with the openssl command (CN=localhost,
  subjectAltName IP:127.0.0.2, the bound address and DNS:localhost, valid
  for a day) in a temporary directory; a client verifies it with
  ``ssl.create_default_context(cafile=mx.cafile)``.  With auth the server
  requires a successful AUTH PLAIN or LOGIN before MAIL (530 otherwise) and
  answers 535 to wrong credentials.  Without any TLS option AUTH is allowed
  in plaintext.

  The SMTP server is aiosmtpd, Debian package python3-aiosmtpd; the openssl
  command comes from the Debian package openssl.

hostname_for_loopback() returns a host name (normally "localhost") that
this machine resolves only to loopback addresses, without touching system
files.  It usually resolves to 127.0.0.1 and/or ::1, not to 127.0.0.2, so a
receiver addressed by that name must be bound to 127.0.0.1
(``HttpReceiver(host="127.0.0.1")``); the SMTP certificate carries
DNS:localhost so a client can also verify it by name.
"""
import copy
import datetime
import email
import email.policy
import email.utils
import http.server
import ipaddress
import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import warnings

DEFAULT_HOST = "127.0.0.2"

__all__ = ["HttpReceiver", "Request", "SmtpReceiver", "Mail",
           "hostname_for_loopback", "DEFAULT_HOST"]


def _check_loopback(host):
    """Refuse to bind anything but a loopback address."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError("receivers bind loopback IP addresses only, "
                         "not %r" % host) from None
    if not ip.is_loopback:
        raise ValueError("%s is not a loopback address" % host)
    return ip


def _netloc(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def _wait_until(cond, pred, timeout, describe):
    """Wait on the Condition `cond` (held by the caller) until pred()
    returns something true; return it, or raise AssertionError."""
    end = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError("timed out after %ss: %s" % (
                timeout, describe()))
        cond.wait(min(left, 0.5))


# --------------------------------------------------------------------------
# HTTP


class Request:
    """One recorded HTTP request.

    method, target (as sent: path and query), path (without the query),
    query (dict of lists), headers (dict, lower-case names; repeated
    headers joined with ", "), body (raw bytes, de-chunked), client
    (address, port), monotonic and time (arrival, time.monotonic() and
    time.time()), status (what was answered: an int, "close", or None
    while a hang is still pending)."""

    def __init__(self, method, target, headers, body, client, mono, wall):
        self.method = method
        self.target = target
        split = urllib.parse.urlsplit(target)
        self.path = split.path
        self.query = urllib.parse.parse_qs(split.query,
                                           keep_blank_values=True)
        self.headers = headers
        self.body = body
        self.client = client
        self.monotonic = mono
        self.time = wall
        self.status = None

    def text(self):
        return self.body.decode("utf-8")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%s %s %r%s>" % (self.method, self.target, self.body[:200],
                                 "" if self.status is None
                                 else " -> %s" % self.status)


def _http_date(value):
    if isinstance(value, datetime.datetime):
        return email.utils.format_datetime(
            value.astimezone(datetime.timezone.utc), usegmt=True)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, str):
        return value
    raise ValueError("Retry-After must be seconds, a str or a datetime: %r"
                     % (value,))


def _body_bytes(body):
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (dict, list)):
        return json.dumps(body).encode("utf-8")
    raise ValueError("response body must be bytes, str, dict or list: %r"
                     % (body,))


def _normalize(spec):
    """Turn an answer as given to plan()/set_default() into one of
    ("send", status, headers, body), ("hang", event), ("close",),
    ("call", fn).  Raises ValueError for anything else."""
    if callable(spec):
        return ("call", spec)
    if isinstance(spec, int) and not isinstance(spec, bool):
        if not 100 <= spec <= 599:
            raise ValueError("bad HTTP status %d" % spec)
        if 200 <= spec < 300:
            body = {"ok": True}
        else:
            try:
                reason = http.HTTPStatus(spec).phrase
            except ValueError:
                reason = "status %d" % spec
            body = {"ok": False, "error": reason}
        return ("send", spec, {}, _body_bytes(body))
    if isinstance(spec, tuple) and spec:
        kind = spec[0]
        if kind == "retry_after" and len(spec) == 2:
            return ("send", 429, {"Retry-After": _http_date(spec[1])},
                    _body_bytes({"ok": False, "error": "Too Many Requests"}))
        if kind == "hang" and len(spec) == 2:
            if not isinstance(spec[1], threading.Event):
                raise ValueError("hang needs a threading.Event")
            return ("hang", spec[1])
        if kind == "close" and len(spec) == 1:
            return ("close",)
        if isinstance(kind, int) and len(spec) == 3:
            status, headers, body = spec
            if not 100 <= status <= 599:
                raise ValueError("bad HTTP status %d" % status)
            return ("send", status, dict(headers or {}), _body_bytes(body))
    raise ValueError("unknown response %r" % (spec,))


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # A burst of connections (bench/notify: 64 at once) must queue, not be
    # refused as the default backlog of 5 would.
    request_queue_size = 256

    def __init__(self, receiver, address, family):
        self.address_family = family
        self.receiver = receiver
        self.connections = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, _HttpHandler)


class _HttpHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tt-e2e-receiver"

    def setup(self):
        super().setup()
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)

    def log_message(self, fmt, *args):
        pass

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n",
                                                             b""):
                        pass            # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after the chunk
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _handle(self):
        mono, wall = time.monotonic(), time.time()
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = (headers[name] + ", " + value
                             if name in headers else value)
        body = self._read_body()
        req = Request(self.command, self.path, headers, body,
                      self.client_address[:2], mono, wall)
        rcv = self.server.receiver
        action = rcv._arrived(req)
        if action[0] == "call":
            action = _normalize(action[1](copy.copy(req)))
        if action[0] == "hang":
            event = action[1]
            while not event.is_set() and not rcv._stopping.is_set():
                event.wait(0.05)
            action = _normalize(200)
        if action[0] == "close":
            req.status = "close"
            self.close_connection = True
            return
        _, status, extra, payload = action
        req.status = status
        try:
            self.send_response(status)
            names = {k.lower() for k in extra}
            for k, v in extra.items():
                self.send_header(k, str(v))
            if "content-type" not in names and payload:
                self.send_header("Content-Type", "application/json")
            no_body = status in (204, 304) or 100 <= status < 200
            if not no_body and "content-length" not in names:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if not no_body and self.command != "HEAD":
                self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True    # the client went away

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = \
        do_OPTIONS = _handle


class HttpReceiver:
    """A recording, programmable HTTP/1.1 server on a loopback address,
    serving from a background thread as soon as it is constructed."""

    def __init__(self, host=DEFAULT_HOST, port=0):
        ip = _check_loopback(host)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        self._cond = threading.Condition()
        self._log = []
        self._plans = {}
        self._default = _normalize(200)
        self._stopping = threading.Event()
        self._server = _HttpServer(self, (host, port), family)
        self.host = host
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
            name="http-receiver-%d" % self.port, daemon=True)
        self._thread.start()

    def url(self, path="/hook"):
        """http://HOST:PORT plus path."""
        if not path.startswith("/"):
            path = "/" + path
        return "http://%s%s" % (_netloc(self.host, self.port), path)

    def plan(self, path, responses):
        """Answer the next requests on `path` with `responses` in order
        (replacing any plan left for that path); then the default."""
        actions = [_normalize(r) for r in responses]
        with self._cond:
            self._plans[path] = actions

    def set_default(self, response):
        """The answer when no plan applies (a status or any answer form)."""
        action = _normalize(response)
        with self._cond:
            self._default = action

    def _arrived(self, req):
        with self._cond:
            self._log.append(req)
            plan = self._plans.get(req.path)
            action = plan.pop(0) if plan else self._default
            self._cond.notify_all()
        return action

    def requests(self, path=None):
        """Copies of the recorded requests, oldest first, optionally only
        those on `path`."""
        with self._cond:
            out = [r for r in self._log if path is None or r.path == path]
            return [self._copy(r) for r in out]

    @staticmethod
    def _copy(r):
        c = copy.copy(r)
        c.headers = dict(r.headers)
        return c

    def clear(self):
        """Forget the recorded requests (plans stay)."""
        with self._cond:
            self._log.clear()

    def wait_for(self, n, path=None, timeout=10):
        """Wait until at least n requests (on `path`) arrived; return them.
        Raises AssertionError listing what did arrive on timeout."""
        def pred():
            got = [r for r in self._log if path is None or r.path == path]
            return got if len(got) >= n else None
        with self._cond:
            _wait_until(self._cond, pred, timeout, lambda: "wanted %d "
                        "request(s)%s, got %r" % (
                            n, "" if path is None else " on " + path,
                            [r for r in self._log
                             if path is None or r.path == path]))
        return self.requests(path)

    def stop(self):
        """Stop serving, release hanging requests, drop open connections
        and close the listening socket.  Idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._server.shutdown()
        time.sleep(0.1)                 # let released hangs answer
        with self._server.conn_lock:
            conns = list(self._server.connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<HttpReceiver %s>" % self.url("/")


# --------------------------------------------------------------------------
# SMTP

_DEBIAN_DIST_PACKAGES = "/usr/lib/python3/dist-packages"


class _TlsRefusedFilter(logging.Filter):
    """Drop aiosmtpd's error record for a failed STARTTLS handshake."""

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ != "TLSSetupException"


def _aiosmtpd():
    """Import aiosmtpd.  Debian's python3-aiosmtpd installs it for the
    system interpreter; when the tests run under another Python 3 (a
    python3 earlier on PATH), Debian's module directory is appended so
    the same pure-Python package is found."""
    try:
        import aiosmtpd
    except ImportError:
        if (os.path.isdir(_DEBIAN_DIST_PACKAGES)
                and _DEBIAN_DIST_PACKAGES not in sys.path):
            sys.path.append(_DEBIAN_DIST_PACKAGES)
        try:
            import aiosmtpd
        except ImportError:
            raise ImportError("aiosmtpd is missing: apt-get install -y "
                              "python3-aiosmtpd") from None
    import aiosmtpd.controller
    import aiosmtpd.smtp
    # aiosmtpd logs a warning for plaintext AUTH and for each use of the
    # legacy login_data; keep test output to errors only, and leave out
    # the traceback of a client refusing our self-signed certificate
    # (tests do that on purpose).
    log = logging.getLogger("mail.log")
    log.setLevel(logging.ERROR)
    if not any(isinstance(f, _TlsRefusedFilter) for f in log.filters):
        log.addFilter(_TlsRefusedFilter())
    warnings.filterwarnings("ignore", message="Requiring AUTH while not "
                            "requiring TLS")
    return aiosmtpd


class Mail:
    """One accepted (or, in rejected(), refused) message.

    mail_from, rcpt_tos (list), content (raw bytes as received after
    DATA, CRLF line ends), message (email.message.EmailMessage parsed with
    email.policy.default from content with "\n" line ends),
    login (the authenticated user name, or None), tls (whether the session
    was encrypted), peer, monotonic and time (arrival), response (what was
    answered to DATA)."""

    def __init__(self, mail_from, rcpt_tos, content, login, tls, peer,
                 response):
        self.mail_from = mail_from
        self.rcpt_tos = list(rcpt_tos)
        self.content = content
        # parsed with the wire's CRLF line ends turned into "\n", so that
        # get_content() gives plain Python text
        self.message = email.message_from_bytes(
            content.replace(b"\r\n", b"\n"), policy=email.policy.default)
        self.login = login
        self.tls = tls
        self.peer = peer
        self.response = response
        self.monotonic = time.monotonic()
        self.time = time.time()

    def __repr__(self):
        return "<Mail %s -> %s %r %s>" % (
            self.mail_from, ",".join(self.rcpt_tos),
            self.message.get("Subject"), self.response)


class _SmtpHandler:
    def __init__(self, receiver):
        self.receiver = receiver

    async def handle_DATA(self, server, session, envelope):
        return self.receiver._data(server, session, envelope)


def _make_cert(directory, host):
    """Self-signed certificate and key for localhost and the loopback
    addresses, valid for a day; returns (certfile, keyfile)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    ips = []
    for a in ("127.0.0.2", host):
        if a not in ips:
            ips.append(a)
    san = ",".join(["IP:" + a for a in ips] + ["DNS:localhost"])
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=" + san],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl req failed (%d): %s" % (
            r.returncode, r.stderr))
    return cert, key


class SmtpReceiver:
    """A real SMTP server (aiosmtpd) on a loopback address that records
    every message; started as soon as it is constructed.

    starttls: offer STARTTLS (AUTH then needs it).  smtps: implicit TLS.
    auth: ("user", "pass") to require AUTH PLAIN/LOGIN with those.
    require_starttls: with starttls, refuse MAIL before STARTTLS (530)."""

    def __init__(self, host=DEFAULT_HOST, port=0, starttls=False,
                 smtps=False, auth=None, require_starttls=False):
        _check_loopback(host)
        if starttls and smtps:
            raise ValueError("choose starttls or smtps, not both")
        lib = _aiosmtpd()
        self.host = host
        self.starttls = starttls
        self.smtps = smtps
        self.auth = tuple(auth) if auth else None
        self._cond = threading.Condition()
        self._messages = []
        self._rejected = []
        self._auth_log = []
        self._fail = []                 # codes for the next DATA commands
        self._dir = None
        self.cafile = None
        kwargs = {"server_hostname": "localhost"}
        ssl_context = None
        if starttls or smtps:
            self._dir = tempfile.mkdtemp(prefix="tt-e2e-smtp-")
            self.cafile, keyfile = _make_cert(self._dir, host)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cafile, keyfile)
            if starttls:
                kwargs["tls_context"] = ctx
                kwargs["require_starttls"] = require_starttls
            else:
                ssl_context = ctx
        if self.auth:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
        # aiosmtpd counts only STARTTLS as encryption: with implicit TLS
        # the socket is encrypted already, and without TLS plaintext AUTH
        # is allowed on purpose.
        kwargs["auth_require_tls"] = bool(starttls)
        receiver = self

        class _Controller(lib.controller.Controller):
            def _trigger_server(self):
                # bound to port 0: learn the real port before aiosmtpd's
                # start-up probe connects to it
                self.port = self.server.sockets[0].getsockname()[1]
                receiver.port = self.port
                super()._trigger_server()

        self.port = port
        self._controller = _Controller(
            _SmtpHandler(self), hostname=host, port=port,
            ssl_context=ssl_context, **kwargs)
        try:
            self._controller.start()
        except BaseException:
            self._cleanup_dir()
            raise
        self._running = True

    # -- hooks called from aiosmtpd's thread

    def _authenticate(self, server, session, envelope, mechanism, data):
        lib = _aiosmtpd()
        login = data.login.decode("utf-8", "replace")
        password = data.password.decode("utf-8", "replace")
        ok = (login, password) == self.auth
        with self._cond:
            self._auth_log.append((mechanism, login, ok))
            self._cond.notify_all()
        return lib.smtp.AuthResult(success=ok, handled=False, auth_data=data)

    def _data(self, server, session, envelope):
        login = None
        if session.authenticated and session.auth_data is not None:
            login = session.auth_data.login.decode("utf-8", "replace")
        tls = server.transport.get_extra_info("ssl_object") is not None
        with self._cond:
            code = self._fail.pop(0) if self._fail else None
            if code is None:
                response = "250 2.0.0 OK queued"
            elif 400 <= code < 500:
                response = "%d 4.3.0 try later" % code
            else:
                response = "%d 5.7.1 message rejected" % code
            mail = Mail(envelope.mail_from, envelope.rcpt_tos,
                        envelope.original_content or envelope.content,
                        login, tls, session.peer, response)
            (self._messages if code is None else self._rejected).append(mail)
            self._cond.notify_all()
        return response

    # -- public API

    def fail_next(self, n, code=451):
        """Answer the next n DATA commands with `code` (4xx: temporary
        "451 4.3.0 try later", 5xx: permanent "550 5.7.1 ...")."""
        if not (400 <= code < 600):
            raise ValueError("fail_next needs a 4xx or 5xx code")
        with self._cond:
            self._fail = [code] * n

    def messages(self):
        """Copies of the accepted messages, oldest first."""
        with self._cond:
            return [copy.copy(m) for m in self._messages]

    def rejected(self):
        """Messages whose DATA was refused by fail_next."""
        with self._cond:
            return [copy.copy(m) for m in self._rejected]

    def auth_attempts(self):
        """(mechanism, login, success) for every AUTH that reached the
        credential check."""
        with self._cond:
            return list(self._auth_log)

    def wait_for(self, n, timeout=10):
        """Wait until at least n messages were accepted; return them.
        Raises AssertionError with what arrived on timeout."""
        with self._cond:
            _wait_until(
                self._cond,
                lambda: len(self._messages) >= n, timeout,
                lambda: "wanted %d message(s), got %r (rejected %r)" % (
                    n, self._messages, self._rejected))
        return self.messages()

    def clear(self):
        with self._cond:
            self._messages.clear()
            self._rejected.clear()
            self._auth_log.clear()

    def _cleanup_dir(self):
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def stop(self):
        """Stop the server and remove the certificate.  Idempotent."""
        if getattr(self, "_running", False):
            self._running = False
            self._controller.stop()
        self._cleanup_dir()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<SmtpReceiver %s%s%s>" % (
            _netloc(self.host, self.port),
            " starttls" if self.starttls else "",
            " smtps" if self.smtps else "")


# --------------------------------------------------------------------------


def hostname_for_loopback():
    """A host name that resolves, here and now, only to loopback
    addresses (normally "localhost"), without editing system files."""
    tried = []
    for name in ("localhost", "localhost.localdomain", "ip6-localhost",
                 "ip6-loopback"):
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except socket.gaierror as e:
            tried.append("%s: %s" % (name, e))
            continue
        addrs = {i[4][0].split("%", 1)[0] for i in infos}
        if addrs and all(ipaddress.ip_address(a).is_loopback for a in addrs):
            return name
        tried.append("%s: %s" % (name, sorted(addrs)))
    raise AssertionError("no host name resolves to loopback only: %s"
                         % "; ".join(tried))
