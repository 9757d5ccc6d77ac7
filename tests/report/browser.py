"""Headless Chromium driven over the Chrome DevTools Protocol, for the report's browser tests.

Debian's `chromium` (`apt-get install chromium`; `.ci/run` installs it) runs with
`--remote-debugging-pipe`: CDP messages are NUL-terminated JSON on file descriptors 3 (to the
browser) and 4 (from it), so no websocket library and no open port is needed. One page per
`Browser`; everything the page logs, throws or requests is recorded from the first navigation on.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT = 60.0


def find_chromium() -> Optional[str]:
    """The Chromium binary on PATH (or `CHROMIUM`), None when there is none."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


class CdpError(RuntimeError):
    """A CDP command answered with an error, or the browser went away."""


class Browser:
    """One headless Chromium with one page attached (flat session mode)."""

    def __init__(self, binary: str, width: int = 1400, height: int = 1000) -> None:
        self.profile = tempfile.mkdtemp(prefix="report-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_fds() -> None:  # in the child, before exec: CDP's pipe ends become fds 3 and 4
            # Copies first: one of the pipe ends may itself be fd 3 or 4.
            reader, writer = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(reader, 3)
            os.dup2(writer, 4)

        self.log = Path(self.profile) / "chromium.log"
        log = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={self.profile}", "--no-first-run", "--no-default-browser-check",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            preexec_fn=wire_fds, close_fds=False,
        )
        log.close()
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._ids = itertools.count(1)
        self._waiting: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page.enable", "Runtime.enable", "Network.enable", "Log.enable"):
            self.page(domain)
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    # -- protocol ---------------------------------------------------------------------------------

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._lock:
                    for waiter in self._waiting.values():
                        waiter.put({"error": {"message": "browser closed the pipe"}})
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        waiter = self._waiting.pop(message["id"], None)
                    if waiter:
                        waiter.put(message)
                else:
                    with self._lock:
                        self.events.append(message)

    def call(self, method: str, session: Optional[str] = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer (`result`)."""
        ident = next(self._ids)
        waiter: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._waiting[ident] = waiter
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        try:
            answer = waiter.get(timeout=TIMEOUT)
        except queue.Empty:
            raise CdpError(f"{method}: no answer in {TIMEOUT} s") from None
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the page's session."""
        return self.call(method, self.session, **params)

    # -- page helpers -----------------------------------------------------------------------------

    def open(self, url: str, ready: str = "document.documentElement.dataset.ready === '1'") -> None:
        """Navigate and wait until the load event fired and `ready` is true."""
        with self._lock:
            self.events.clear()
        self.page("Page.navigate", url=url)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.evaluate(f"document.readyState === 'complete' && ({ready})"):
                return
            time.sleep(0.05)
        raise CdpError(f"{url}: not ready in {TIMEOUT} s")

    def evaluate(self, expression: str) -> Any:
        """A JavaScript expression's value (JSON-serialisable) in the page."""
        answer = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise CdpError(f"{expression[:80]}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page."""
        size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        data = self.page("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def events_named(self, *methods: str) -> list[dict[str, Any]]:
        """Recorded events of these methods (since the last `open`)."""
        with self._lock:
            return [e for e in self.events if e.get("method") in methods]

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (CSP violations among them)."""
        found = []
        for event in self.events_named("Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded"):
            params = event["params"]
            if event["method"] == "Runtime.exceptionThrown":
                found.append(json.dumps(params["exceptionDetails"])[:500])
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(json.dumps(params.get("args"))[:500])
            elif event["method"] == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(params["entry"].get("text", "")[:500])
        return found

    def requests(self) -> list[str]:
        """URLs the page requested (the document itself included)."""
        return [e["params"]["request"]["url"] for e in self.events_named("Network.requestWillBeSent")]

    def close(self) -> None:
        """Stop the browser (this process only) and remove its profile."""
        try:
            self.call("Browser.close")
        except CdpError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)
