"""End-to-end: a bad configuration stops `tokentap up` before anything
starts, with a message naming the key and quoting the value."""
import os
import shutil
import sys
import tempfile

from stack import Stack, free_port, run_tests


def up(data, *args):
    """Run `tokentap up -d` on data with extra args; return the result."""
    s = Stack()
    s.data = data
    return s.tokentap("up", "-d", "--port", str(free_port()), "--data", data,
                      *args, check=False)


def nothing_running(data):
    run = os.path.join(data, "run")
    return not any(n.endswith(".pid") for n in
                   (os.listdir(run) if os.path.isdir(run) else []))


def test_bad_set_value_stops_start():
    """--set api_threads=abc: exit 1, key and value named, nothing runs."""
    d = tempfile.mkdtemp(prefix="tt-e2e-conf-")
    try:
        r = up(d, "--set", "api_threads=abc")
        assert r.returncode == 1, r
        out = r.stdout + r.stderr
        assert 'invalid value "abc" for "api_threads"' in out, out
        assert nothing_running(d), os.listdir(os.path.join(d, "run"))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_bad_file_line_stops_start():
    """A bad line in DIR/tokentap.conf is reported with its line number."""
    d = tempfile.mkdtemp(prefix="tt-e2e-conf-")
    try:
        with open(os.path.join(d, "tokentap.conf"), "w") as f:
            f.write("# comment\nlog_level = loud\n")
        r = up(d)
        assert r.returncode == 1, r
        out = r.stdout + r.stderr
        assert 'tokentap.conf:2: invalid value "loud" for "log_level"' in out
        assert nothing_running(d)
        with open(os.path.join(d, "tokentap.conf"), "w") as f:
            f.write("no_such_option = 1\n")
        r = up(d)
        assert r.returncode == 1 and 'unknown option "no_such_option"' in (
            r.stdout + r.stderr), r
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    failed = run_tests([test_bad_set_value_stops_start,
                        test_bad_file_line_stops_start])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
