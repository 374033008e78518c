"""End-to-end: the web UI in real Chromium (Debian's chromium, driven by
playwright-core from www/node_modules: www/e2e/ui.mjs) against a private
stack with demo traffic.  Sign-in (a wrong key refused, a session cookie,
deep links), then every page's module in www/e2e/pages/, sign-out, and no
console errors.  Screenshots of each page at desktop and phone width are
kept in TT_BUILDDIR/tests/artifacts/ui/ (or TT_UI_OUT).

TT_UI_ONLY=word,word runs only the page modules whose names hold one;
TT_WWW_DIR serves a build of the UI other than www/dist."""
import os
import shutil
import subprocess
import sys

from stack import BUILD, Stack

SRC = os.environ.get("TT_SRCDIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WWW = os.path.join(SRC, "www")


def main():
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.path.isdir(os.path.join(WWW, "node_modules")) or \
            not os.path.exists(chromium) or not shutil.which("node"):
        print("ui: no www/node_modules, node or chromium; skipping")
        sys.exit(0)
    out = os.environ.get("TT_UI_OUT") or os.path.join(BUILD, "tests",
                                                      "artifacts", "ui")
    shutil.rmtree(out, ignore_errors=True)
    # Webhooks set up in the browser go to a receiver the test runs on
    # loopback, which the notifier refuses unless allowed.
    with Stack(demo=True, sets=["notify_allow_networks=127.0.0.1/32"]) as s:
        p = subprocess.run(
            ["node", os.path.join(WWW, "e2e", "ui.mjs"), "--url",
             "http://127.0.0.1:%d" % s.port, "--key", s.admin_key, "--out",
             out, "--chromium", chromium],
            cwd=WWW, capture_output=True, text=True, timeout=900)
        print(p.stdout + p.stderr)
        if p.returncode != 0:
            s.dump_logs()
            sys.exit(1)
    print("screenshots: " + out)


if __name__ == "__main__":
    main()
