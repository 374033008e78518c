"""End-to-end: `tokentap up` as people run it.  --demo fills the stack with
realistic traffic, and the foreground mode stops everything cleanly on
Ctrl-C (SIGINT to its process group, as a terminal sends it)."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from stack import BUILD, SRC, Stack, free_port, run_tests


def stack_pids(data):
    """Pids of the processes whose command line names the data dir."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if data in cmd and "test_up.py" not in cmd:
            pids.append(int(d))
    return pids


def test_demo_sends_realistic_traffic():
    """up --demo: within seconds the live stats show several providers and
    models, tokens and a cost computed from the catalog."""
    with Stack(demo=True) as s:
        deadline = time.time() + 30
        st = None
        while time.time() < deadline:
            st = s.stats("1m")
            if st["requests"] >= 30 and len(st["providers"]) >= 3:
                break
            time.sleep(1)
        assert st["requests"] >= 30, st
        assert len(st["providers"]) >= 3, st["providers"]
        assert len(st["models"]) >= 4, [m["model"] for m in st["models"]]
        assert st["tokens"]["input"] > 0 and st["cost_usd"] > 0, st
        assert st["latency_ms"]["p95"] is not None, st
        feed = s.get("/api/v1/live/feed?limit=50").json()["requests"]
        assert feed and all(e["id"] for e in feed), feed[:2]


def test_foreground_up_stops_on_ctrl_c():
    """up in the foreground stays until Ctrl-C, then stops every process
    of the stack and removes its segment."""
    data = tempfile.mkdtemp(prefix="tt-e2e-fg-")
    port = free_port()
    env = dict(os.environ, TT_NO_SETUP="1", TT_SRCDIR=SRC, TT_BUILDDIR=BUILD)
    p = subprocess.Popen([os.path.join(SRC, "tokentap"), "up", "--port",
                          str(port), "--data", data], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        out = ""
        deadline = time.time() + 30
        while time.time() < deadline and "tokentap is up" not in out:
            line = p.stdout.readline()
            if not line:
                break
            out += line
        assert "tokentap is up" in out, out
        assert p.poll() is None, "up returned instead of staying"
        assert stack_pids(data), "nothing runs"
        conf = subprocess.run(
            [os.path.join(BUILD, "collector", "tt-collector"), "--data",
             data, "--print-config"], capture_output=True, text=True).stdout
        shm = [l.split(" = ")[1] for l in conf.splitlines()
               if l.startswith("shm_name = ")][0]
        assert os.path.exists("/dev/shm" + shm), shm
        os.killpg(p.pid, signal.SIGINT)
        rc = p.wait(15)
        assert rc == 0, (rc, p.stdout.read())
        deadline = time.time() + 5
        while time.time() < deadline and stack_pids(data):
            time.sleep(0.1)
        assert not stack_pids(data), stack_pids(data)
        assert not os.path.exists("/dev/shm" + shm), shm
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        for pid in stack_pids(data):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(data, ignore_errors=True)


def main():
    failed = run_tests([test_demo_sends_realistic_traffic,
                        test_foreground_up_stops_on_ctrl_c])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
