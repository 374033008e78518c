"""End-to-end: request ids and logs.  An incoming X-Request-ID is kept (or
nginx makes one), returned, written on the log lines about the request in
nginx, the API and the collector, and stored with an ingested event that
has no id of its own; a live stream's log lines carry its id in the
relay's log; every component logs key=value lines with time, level and
component to its own file under DIR/log/, and reopens it on SIGHUP."""
import os
import re
import signal
import subprocess
import sys
import time

from stack import BUILD, Stack, run_tests, wait_for

S = None


def log(name):
    with open(os.path.join(S.data, "log", name + ".log"),
              errors="replace") as f:
        return f.read()


def test_ingest_request_id_everywhere():
    key = S.create_key("admin", workspace="rid", name="rid")
    ev = [{"provider": "openai", "model": "m", "input_tokens": 1,
           "output_tokens": 1},
          {"provider": "openai", "model": "m", "input_tokens": 1,
           "output_tokens": 1, "request_id": "its-own"}]
    r = S.request("POST", "/api/v1/events", body=ev, key=key,
                  headers={"X-Request-ID": "rid-e2e-0001"})
    assert r.status in (200, 201, 202), r
    assert r.headers.get("x-request-id") == "rid-e2e-0001", r.headers
    feed = S.get("/api/v1/live/feed", key=key).json()["requests"]
    assert sorted(e["request_id"] for e in feed) == \
        ["its-own", "rid-e2e-0001"], feed
    # Without one, nginx makes one (32 hex digits) and returns it.
    r = S.get("/api/v1/live/stats", key=key)
    made = r.headers.get("x-request-id", "")
    assert re.fullmatch(r"[0-9a-f]{32}", made), made
    # The log lines about a request carry its id, in each process: nginx's
    # access line, and the collector's line about a command it ran.
    wait_for(lambda: "rid-e2e-0001" in log("nginx-access"))
    assert "rid=rid-e2e-0001" in log("nginx-access")
    r = S.request("POST", "/api/v1/keys",
                  body={"role": "read", "workspace": "rid", "name": "k2"},
                  headers={"X-Request-ID": "rid-e2e-0003"})
    assert r.status == 201, r
    wait_for(lambda: "rid-e2e-0003" in log("collector"))
    lines = [line for line in log("collector").splitlines()
             if "rid-e2e-0003" in line]
    assert any("key created" in line and "rid=rid-e2e-0003" in line
               for line in lines), lines
    wait_for(lambda: "rid=rid-e2e-0003" in log("nginx-access"))
    # A request the API refuses is logged by it with the id.
    r = S.request("GET", "/api/v1/live/stats", key="tt_" + "0" * 40,
                  headers={"X-Request-ID": "rid-e2e-0004"})
    assert r.status == 401, r
    assert r.json()["error"]["request_id"] == "rid-e2e-0004", r


def test_relay_logs_the_stream_request_id():
    key = S.create_key("read", workspace="rid", name="reader")
    p = subprocess.run(
        [os.path.join(BUILD, "tools", "tt-ws"), "--url",
         "ws://127.0.0.1:%d/ws/live" % S.port, "--header",
         "Authorization: Bearer " + key, "--header",
         "X-Request-ID: rid-ws-0002", "--messages", "1", "--duration", "10"],
        capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    wait_for(lambda: "rid-ws-0002" in log("relay"))
    lines = [line for line in log("relay").splitlines()
             if "rid-ws-0002" in line]
    assert any("stream opened" in line for line in lines), lines


def test_structured_lines_and_sighup_reopens():
    for name in ("collector", "api", "notify", "relay"):
        lines = [line for line in log(name).splitlines() if line.strip()]
        assert lines, name
        for line in lines[:20]:
            assert re.match(r"ts=\S+ level=(debug|info|warn|error) comp=\S+ ",
                            line), (name, line)
    # Rotation: move the files away, SIGHUP the components, new files.
    logdir = os.path.join(S.data, "log")
    for name in ("collector", "api", "notify", "relay"):
        os.rename(os.path.join(logdir, name + ".log"),
                  os.path.join(logdir, name + ".log.1"))
        os.kill(S.pid(name), signal.SIGHUP)
    key = S.create_key("admin", workspace="rid2", name="again")
    assert key
    for name in ("collector", "api", "notify", "relay"):
        wait_for(lambda: os.path.exists(os.path.join(logdir, name + ".log")))


def main():
    global S
    with Stack() as s:
        S = s
        failed = run_tests([test_ingest_request_id_everywhere,
                            test_relay_logs_the_stream_request_id,
                            test_structured_lines_and_sighup_reopens], s)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
