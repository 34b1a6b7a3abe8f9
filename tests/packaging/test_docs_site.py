"""The built documentation site, looked at in a real browser (headless Chromium).

Build the site first (``sphinx-build -W --keep-going -b html docs docs/_build/html``). Each page
is loaded from disk; the test fails on a console error, an uncaught exception or a resource that
failed to load, checks that every image on the page loaded (and that the gallery's are non-empty
PNG files), and keeps a screenshot of every page in ``docs/_build/screenshots/``. The browser is
driven over its DevTools protocol on a pipe, so nothing but Chromium and the standard library is
needed. Without the site or Chromium the test skips, unless ``CYDROP_REQUIRE_DOCS_SITE=1`` (CI)
makes that a failure.
"""

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "docs" / "_build" / "html"
SHOTS = ROOT / "docs" / "_build" / "screenshots"
PAGES = {
    "landing": "index.html",
    "api": "api/generated/cydrop.dropout.html",
    "gallery": "auto_examples/plot_nnfs_spiral.html",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.slow


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _missing(reason):
    if os.environ.get("CYDROP_REQUIRE_DOCS_SITE") == "1":
        pytest.fail(f"CYDROP_REQUIRE_DOCS_SITE=1 but {reason}")
    pytest.skip(reason)


class Browser:
    """Headless Chromium on --remote-debugging-pipe: JSON messages separated by NUL bytes,
    read from the browser's fd 4 and written to its fd 3."""

    def __init__(self, exe):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def child_fds():
            # move both ends clear of 3 and 4 first: either may already sit on one of them
            r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self._profile = Path(SHOTS.parent / "chromium-profile")
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--remote-debugging-pipe", "--window-size=1280,2000",
             f"--user-data-dir={self._profile}", "about:blank"],
            preexec_fn=child_fds, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._replies = {}
        self.events = queue.Queue()
        self._lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._lock:
                        self._replies[msg["id"]] = msg
                        self._lock.notify_all()
                else:
                    self.events.put(msg)

    def send(self, method, params=None, session=None, timeout=60):
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        with self._lock:
            if not self._lock.wait_for(lambda: msg["id"] in self._replies, timeout):
                raise TimeoutError(f"no reply to {method} within {timeout} s")
            reply = self._replies.pop(msg["id"])
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self._profile, ignore_errors=True)


def _problems(event):
    """The console errors, uncaught exceptions and failed loads an event reports."""
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        return [f"uncaught exception: {details.get('exception', {}).get('description') or details}"]
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        return ["console error: " + " ".join(str(a.get("value", a.get("description")))
                                             for a in params.get("args", []))]
    if method == "Log.entryAdded" and params["entry"].get("level") == "error":
        entry = params["entry"]
        return [f"log error ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}"]
    return []


@pytest.fixture(scope="module")
def browser():
    if not (SITE / "index.html").is_file():
        _missing(f"the documentation site is not built in {SITE}")
    exe = _chromium()
    if exe is None:
        _missing("Chromium is not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    b = Browser(exe)
    yield b
    b.close()


@pytest.mark.parametrize("name", list(PAGES))
def test_page_renders_without_errors(browser, name):
    page = SITE / PAGES[name]
    assert page.is_file(), f"{page} is missing from the built site"
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget",
                           {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Runtime", "Log", "Page"):
        browser.send(f"{domain}.enable", session=session)
    browser.send("Page.navigate", {"url": page.as_uri()}, session=session)

    problems, loaded, deadline = [], False, time.monotonic() + 60
    settle = None
    while time.monotonic() < deadline:
        try:
            event = browser.events.get(timeout=0.25)
        except queue.Empty:
            if settle is not None and time.monotonic() > settle:
                break
            continue
        if event.get("sessionId") != session:
            continue
        problems += _problems(event)
        if event.get("method") == "Page.loadEventFired" and not loaded:
            loaded, settle = True, time.monotonic() + 1.5   # late script errors
    assert loaded, f"{PAGES[name]} did not finish loading within 60 s"

    images = browser.send("Runtime.evaluate", {
        "expression": "JSON.stringify(Array.from(document.images).map("
                      "i => [i.currentSrc || i.src, i.complete, i.naturalWidth]))",
        "returnByValue": True}, session=session)["result"]["value"]
    shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
    (SHOTS / f"{name}.png").write_bytes(base64.b64decode(shot))
    browser.send("Target.closeTarget", {"targetId": target})

    assert not problems, f"{PAGES[name]}:\n" + "\n".join(problems)
    broken = [src for src, complete, width in json.loads(images) if not complete or width == 0]
    assert not broken, f"{PAGES[name]}: images that did not load: {broken}"
    if name == "gallery":
        figures = [src for src, _, _ in json.loads(images) if "sphx_glr_" in src]
        assert figures, "the gallery page embeds no figure"
        for src in figures:
            path = Path(src.replace("file://", ""))
            data = path.read_bytes()
            assert data.startswith(PNG_MAGIC) and len(data) > 1000, f"{path} is not a PNG"
