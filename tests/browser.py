"""Headless Chromium for tests that look at the Prefect UI the way a user does.

Debian's ``chromium`` (``make sysdeps`` installs it) is driven over the Chrome
DevTools Protocol (CDP) with the ``websockets`` client Prefect already depends on:
open a page, wait until given texts are on it, click a tab by its label, take a
screenshot. ``render_page`` is the one-call form most tests want.

Flags (``FLAGS``) and why:

* ``--headless --no-sandbox``: no display; root in a container has no user
  namespace for Chromium's sandbox. ``--disable-gpu``: no GPU (the run graph's
  WebGL falls back to software; the "Automatic fallback to software WebGL"
  messages on stderr are harmless).
* ``--disable-background-networking --disable-component-update --disable-sync
  --no-first-run --disable-quic``: none of the browser's own traffic (update
  checks, sync, field trials, first-run pages). This machine has no network but
  the loopback server under test, and a test must not reach for any other.
* ``--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost``:
  the flags above still leave DNS look-ups behind (accounts.google.com,
  update.googleapis.com, sctauditing-pa.googleapis.com, and the Prefect V2 UI's
  Amplitude client, which fetches ``sr-client-cfg.amplitude.com`` at load even with
  ``PREFECT_SERVER_ANALYTICS_ENABLED=false``); this makes every name but the
  loopback fail inside Chromium, with no query sent. Use ``127.0.0.1`` URLs.
* a fresh ``--user-data-dir`` per browser (no cookies: the UI keeps its V1/V2
  choice in a cookie), ``--remote-debugging-port=0`` (Chromium picks a free port
  and writes it to ``DevToolsActivePort`` in the profile: no port race).

The Prefect UI (3.8.8) is a JavaScript app that reads the API after load, so the
page's text is polled until the expected strings appear; ``--dump-dom`` with
``--virtual-time-budget=3000`` also works for a one-shot look at a V2 page but has
no "wait until" and says nothing about what was missing.

Which UI: 3.8.8 serves V1 (Vue) at ``/`` and V2 (React) at ``/v2``; with
``server.ui.v2_enabled`` (default true) only ``/`` itself redirects to ``/v2/``,
deep links such as ``/runs/flow-run/<id>`` (the "View at" link in run logs) stay
on V1. ``flow_run_url`` builds V2 links because V2 honours ``?tab=Artifacts`` on a
fresh load; V1 rewrites it to ``?tab=Logs`` (the tab is hidden until the run has
loaded), so on V1 click the "Artifacts" tab instead (``Page.click_text``).
The server must know its own URL (``PREFECT_API_URL`` or ``PREFECT_UI_API_URL`` in
its environment): otherwise ``/ui-settings`` tells the browser to call
``http://127.0.0.1:4200/api`` whatever ``--port`` the server was started with.
"""

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost",
         "--window-size=1400,1200"]

# The flow-run page's tabs in the V2 UI (the ``tab`` search parameter; anything else silently shows Logs).
FLOW_RUN_TABS = ("Logs", "TaskRuns", "SubflowRuns", "Artifacts", "Details", "Parameters", "JobVariables")


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def flow_run_url(api_url: str, flow_run_id, tab: str | None = None, ui: str = "v2") -> str:
    """The UI page of a flow run, e.g. ``http://127.0.0.1:P/v2/runs/flow-run/<id>?tab=Artifacts``.

    ``tab`` is one of ``FLOW_RUN_TABS`` (V2 only; V1 drops it on a fresh load, see the module docstring).
    ``ui="v1"`` gives the V1 page ``/runs/flow-run/<id>``, the link Prefect prints in run logs.

    Raises:
        ValueError: an unknown tab, a tab with ``ui="v1"``, or an unknown ``ui``.
    """
    base = api_url.rstrip("/").removesuffix("/api")
    if ui == "v1":
        if tab is not None:
            raise ValueError("the V1 UI drops ?tab= on a fresh load: open the page and click the tab instead")
        return f"{base}/runs/flow-run/{flow_run_id}"
    if ui != "v2":
        raise ValueError(f"ui must be 'v1' or 'v2', not {ui!r}")
    url = f"{base}/v2/runs/flow-run/{flow_run_id}"
    if tab is None:
        return url
    if tab not in FLOW_RUN_TABS:
        raise ValueError(f"unknown flow-run tab {tab!r}; one of {FLOW_RUN_TABS}")
    return f"{url}?tab={tab}"


class Page:
    """One tab of a headless Chromium, driven over CDP."""

    def __init__(self, ws):
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        msg_id = self.next_id
        await self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def _eval(self, expression: str) -> str:
        try:
            res = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        except RuntimeError:  # the page navigated while we asked (execution context destroyed)
            return ""
        return res.get("result", {}).get("value") or ""

    async def text(self) -> str:
        """The visible text (``document.body.innerText``)."""
        return await self._eval("document.body ? document.body.innerText : ''")

    async def html(self) -> str:
        """The rendered DOM (``document.documentElement.outerHTML``), as ``--dump-dom`` gives it."""
        return await self._eval("document.documentElement.outerHTML")

    async def wait_for(self, texts: list[str], timeout_s: float) -> str:
        """Poll the page text until every string in ``texts`` is present; returns the text."""
        deadline = time.monotonic() + timeout_s
        body = ""
        while time.monotonic() < deadline:
            body = await self.text()
            if all(t in body for t in texts):
                return body
            await asyncio.sleep(0.5)
        missing = [t for t in texts if t not in body]
        raise AssertionError(f"never appeared on the page: {missing}")

    async def click_text(self, label: str) -> None:
        """Click the first tab / button / link whose visible text is exactly ``label``."""
        js = ("(() => { const el = [...document.querySelectorAll('button, a, [role=tab], li, span')]"
              f".find(e => e.innerText && e.innerText.trim() === {json.dumps(label)});"
              " if (!el) return false; el.click(); return true; })()")
        res = await self.call("Runtime.evaluate", expression=js, returnByValue=True)
        if not res["result"].get("value"):
            raise AssertionError(f"nothing labelled {label!r} to click")

    async def screenshot(self, path: Path) -> None:
        res = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(base64.b64decode(res["data"]))


def _devtools_port(profile: str, proc: subprocess.Popen, timeout_s: float) -> int:
    """The port Chromium chose for ``--remote-debugging-port=0`` (first line of DevToolsActivePort)."""
    marker = Path(profile) / "DevToolsActivePort"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited at start (code {proc.returncode})")
        try:
            return int(marker.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            time.sleep(0.1)
    raise RuntimeError("chromium's DevTools endpoint did not come up")


async def _with_page(url: str, fn, port: int):
    import websockets

    deadline = time.monotonic() + 30
    target = None
    while time.monotonic() < deadline and target is None:
        try:
            pages = httpx.get(f"http://127.0.0.1:{port}/json", timeout=2).json()
            target = next((p for p in pages if p.get("type") == "page"), None)
        except (httpx.HTTPError, ValueError):
            pass
        if target is None:
            await asyncio.sleep(0.3)
    if target is None:
        raise RuntimeError("chromium's DevTools endpoint did not come up")
    async with websockets.connect(target["webSocketDebuggerUrl"], max_size=64 * 2**20) as ws:
        page = Page(ws)
        await page.call("Page.enable")
        await page.call("Page.navigate", url=url)
        return await fn(page)


def _stop(proc: subprocess.Popen) -> None:
    """End the browser we started and its helper processes (its own process group)."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def with_browser(url: str, fn, debug_port: int | None = None):
    """Start Chromium, open ``url``, run ``await fn(page)`` and return its result; the browser is always closed.

    ``debug_port`` None lets Chromium choose a free DevTools port.

    Raises:
        RuntimeError: Chromium is missing or its DevTools endpoint never answered.
    """
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed: run `make sysdeps` (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="ghnerf-chromium-")
    proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={debug_port or 0}",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        port = debug_port or _devtools_port(profile, proc, 30)
        return asyncio.run(_with_page(url, fn, port))
    finally:
        _stop(proc)
        shutil.rmtree(profile, ignore_errors=True)


def render_page(url: str, out_png: Path, wait_for: list[str], timeout_s: float = 60) -> str:
    """Open ``url`` in headless Chromium, wait until every string of ``wait_for`` is in the page's visible
    text, save a screenshot to ``out_png`` and return the rendered DOM (HTML, so callers can also check
    markup such as ``<img src="data:...">``; it contains the visible text).

    Raises:
        AssertionError: some strings never appeared within ``timeout_s``; names them, the URL and the
            screenshot (taken anyway), with the end of the page's text.
        RuntimeError: Chromium is missing or did not start.
    """
    out_png = Path(out_png)

    async def look(page: Page) -> str:
        deadline = time.monotonic() + timeout_s
        text = ""
        while True:
            text = await page.text()
            missing = [s for s in wait_for if s not in text]
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        if not missing:
            await asyncio.sleep(0.3)  # let images and layout settle for the picture
        await page.screenshot(out_png)
        if missing:
            raise AssertionError(f"never appeared on {url} within {timeout_s:.0f} s: {missing}; "
                                 f"screenshot {out_png}; page text ends: {text[-1500:]!r}")
        return await page.html()

    return with_browser(url, look)
