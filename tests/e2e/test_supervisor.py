"""End-to-end: the keeper restarts a killed supervisor; a killed keeper
leaves the stack running; `tokentap down` stops everything either way.

tt-supervise runs as a keeper (DIR/run/keeper.pid) whose child is the
supervisor (DIR/run/supervise.pid), whose children are the components.
SIGKILL the supervisor under sustained ingest: the kernel stops the
components (PR_SET_PDEATHSIG), the keeper starts a new supervisor, which
waits for them to finish flushing and starts new ones; /health/ready is 200
again within a few seconds and every acknowledged event is stored.  SIGKILL
the keeper: nothing else notices.  After either, `tokentap down` must leave
no process of the stack behind: every process whose command line names the
data directory, and their descendants (nginx's workers), is gone.
"""
import os
import re
import signal
import sys
import time

from stack import Stack, run_tests, Loader, stop_loaders

S = None  # the stack the current test drives


def proc_table():
    """{pid: (ppid, state, comm, cmdline)} of every process we can read."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2:].split()
        table[int(d)] = (int(rest[1]), rest[0], comm, cmd.strip())
    return table


def stack_procs(data):
    """{pid: description} of the live processes of the stack on data: those
    whose command line names the data directory, and their descendants."""
    table = proc_table()
    pat = re.compile(re.escape(data) + r"(/|\s|$)")
    mine = {p for p, (_, st, _, cmd) in table.items()
            if st not in "ZX" and pat.search(cmd)}
    grew = True
    while grew:
        grew = False
        for p, (ppid, st, _, _) in table.items():
            if p not in mine and ppid in mine and st not in "ZX":
                mine.add(p)
                grew = True
    return {p: "%s: %s" % (table[p][2], table[p][3]) for p in mine}


def alive(pid):
    """True if pid is a live process (a zombie is not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(") ", 1)[1][0] not in "ZX"
    except (FileNotFoundError, ProcessLookupError):
        return False


def ppid_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(") ", 1)[1].split()[1])


def read_pid(name):
    try:
        return S.pid(name)
    except (OSError, ValueError):
        return None


def stored(prefix):
    return {r[0] for r in S.query("SELECT id FROM events WHERE id LIKE ?",
                                  (prefix + "%",))}


def ingest_one(tag):
    """One event through the whole stack: 200, and it is in the database."""
    r = S.ingest([{"id": tag, "provider": "anthropic", "model": "claude",
                   "input_tokens": 3}])
    assert r.status == 200, r
    assert stored(tag) == {tag}, tag


def assert_down(expect=("tt-supervise", "tt-collector", "tt-api", "nginx")):
    """`tokentap down` stops every process of the stack (which runs at
    least the programs in expect)."""
    before = stack_procs(S.data)
    names = {d.split(":")[0] for d in before.values()}
    assert set(expect) <= names, before
    r = S.tokentap("down", "--data", S.data, check=False)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "stopped" in r.stdout, r.stdout
    # Also the ones that no longer descend from a process naming the data
    # directory (an orphaned nginx worker, say).
    deadline = time.time() + 0.5
    while True:
        table = proc_table()
        left = stack_procs(S.data)
        left.update({p: d for p, d in before.items() if p in table and
                     table[p][1] not in "ZX" and
                     d.startswith(table[p][2] + ":")})
        if not left or time.time() > deadline:
            break
        time.sleep(0.05)
    assert not left, "left running after down: %s" % left
    st = S.tokentap("status", "--data", S.data, check=False)
    assert st.returncode != 0, st.stdout
    assert "running (pid" not in st.stdout, st.stdout


# ---- stack 1: SIGKILL the supervisor ----

def test_status_shows_keeper():
    """status lists the keeper; the supervisor is the keeper's child."""
    r = S.tokentap("status", "--data", S.data)
    keeper, sup = read_pid("keeper"), read_pid("supervise")
    assert "keeper     running (pid %d)" % keeper in r.stdout, r.stdout
    assert "supervise  running (pid %d)" % sup in r.stdout, r.stdout
    assert ppid_of(sup) == keeper, (sup, keeper)
    assert ppid_of(read_pid("collector")) == sup


def assert_up_refused():
    """A second `up` on the stack's data directory fails: already running."""
    r = S.tokentap("up", "-d", "--port", str(S.port + 1), "--data", S.data,
                   check=False)
    assert r.returncode != 0, r.stdout
    assert "already running" in r.stderr, r.stderr


def test_up_refuses_while_running():
    """A second up on the same data directory is refused."""
    assert_up_refused()


def test_supervisor_sigkill_recovers_and_loses_nothing():
    """SIGKILL the supervisor twice under load: the keeper starts a new one
    within ~200 ms, the stack is ready again within a few seconds, and
    every acknowledged event is stored."""
    keeper = read_pid("keeper")
    loaders = [Loader(S, "sup-k%d" % n) for n in range(4)]
    for l in loaders:
        l.start()
    time.sleep(1.5)
    respawn, ready = [], []
    for _ in range(2):
        old_sup, old_col = read_pid("supervise"), read_pid("collector")
        os.kill(old_sup, signal.SIGKILL)
        t0 = time.time()
        new_sup = None
        while time.time() - t0 < 5:
            p = read_pid("supervise")
            if p not in (None, old_sup) and alive(p):
                new_sup = p
                break
            time.sleep(0.005)
        assert new_sup, "the supervisor was not restarted"
        respawn.append(time.time() - t0)
        assert ppid_of(new_sup) == keeper
        assert S.wait_ready(10), "not ready after a supervisor restart"
        ready.append(time.time() - t0)
        assert read_pid("collector") != old_col
        assert not alive(old_col), "the old collector still runs"
        time.sleep(1.5)
    acked, statuses = stop_loaders(loaders)
    print("    acked=%d statuses=%s respawn_s=%s ready_s=%s" % (
        len(acked), statuses, ["%.3f" % t for t in respawn],
        ["%.2f" % t for t in ready]))
    assert read_pid("keeper") == keeper and alive(keeper)
    assert len(acked) > 500, statuses
    missing = set(acked) - stored("sup-k")
    assert not missing, "%d acknowledged events lost, e.g. %s" % (
        len(missing), sorted(missing)[:5])
    assert max(respawn) < 1.5, respawn
    assert max(ready) < 6, ready
    ingest_one("sup-after-restart")
    with open(os.path.join(S.data, "log", "supervise.log")) as f:
        log = f.read()
    assert log.count('msg="restarting supervisor"') == 2, log[-2000:]
    assert "status=signal:9" in log


def test_down_after_supervisor_restart():
    """down after restarts stops keeper, supervisor and components."""
    assert_down()


# ---- stack 2: SIGKILL the keeper ----

def test_keeper_sigkill_leaves_stack_running():
    """A killed keeper changes nothing: the supervisor keeps supervising."""
    keeper, sup = read_pid("keeper"), read_pid("supervise")
    os.kill(keeper, signal.SIGKILL)
    time.sleep(1)
    assert not alive(keeper)
    assert alive(sup) and read_pid("supervise") == sup
    assert S.wait_ready(5)
    ingest_one("sup-no-keeper-1")
    # It still restarts a crashed component.
    old = read_pid("api")
    os.kill(old, signal.SIGKILL)
    deadline = time.time() + 5
    while time.time() < deadline:
        p = read_pid("api")
        if p not in (None, old) and alive(p):
            break
        time.sleep(0.02)
    assert read_pid("api") != old
    assert S.wait_ready(5)
    ingest_one("sup-no-keeper-2")
    r = S.tokentap("status", "--data", S.data, check=False)
    assert r.returncode == 1, r.stdout
    assert "keeper     not running" in r.stdout, r.stdout
    assert "supervise  running (pid %d)" % sup in r.stdout, r.stdout


def test_up_refuses_with_supervisor_only():
    """With only the supervisor alive, up is still refused."""
    assert_up_refused()


def test_down_without_keeper():
    """down stops the supervisor and components without the keeper."""
    assert_down()


# ---- stack 3: down while the keeper is restarting the supervisor ----

def test_down_during_supervisor_restart():
    """down right after a supervisor SIGKILL (its components still
    flushing, a new supervisor starting) stops everything, and nothing is
    started again afterwards."""
    loaders = [Loader(S, "sup-d%d" % n) for n in range(2)]
    for l in loaders:
        l.start()
    time.sleep(1)
    os.kill(read_pid("supervise"), signal.SIGKILL)
    time.sleep(0.05)
    for l in loaders:
        l.stop = True
    # Only the keeper is sure to be there: the old components may already
    # have flushed and gone (the collector stops in about 0.1 s).
    assert_down(expect=("tt-supervise",))
    for l in loaders:
        l.join(30)
    time.sleep(1.5)
    left = stack_procs(S.data)
    assert not left, "started again after down: %s" % left
    acked = [i for l in loaders for i in l.acked]
    missing = set(acked) - stored("sup-d")
    assert not missing, "%d acknowledged events lost" % len(missing)


def main():
    global S
    failed = 0
    for tests in ([test_status_shows_keeper, test_up_refuses_while_running,
                   test_supervisor_sigkill_recovers_and_loses_nothing,
                   test_down_after_supervisor_restart],
                  [test_keeper_sigkill_leaves_stack_running,
                   test_up_refuses_with_supervisor_only,
                   test_down_without_keeper],
                  [test_down_during_supervisor_restart]):
        with Stack(sets=["ingest_timeout_ms=1500"]) as s:
            S = s
            failed += run_tests(tests, s)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
