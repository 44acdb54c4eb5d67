"""Headless Chromium for tests that look at the Prefect UI the way a user does.

Debian's ``chromium`` (``make sysdeps`` installs it) is driven over the Chrome
DevTools Protocol with the ``websockets`` client Prefect already depends on: open a
page, wait until given texts appear, click a tab by its label, take a screenshot.
Flags: ``--headless --no-sandbox`` (root in a container), ``--disable-gpu``, and
``--disable-background-networking --disable-component-update --disable-sync
--no-first-run --disable-quic`` so the browser makes no connection beyond the
loopback server under test (this machine has no other network); a fresh
``--user-data-dir`` per browser.
"""

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--window-size=1400,1200"]


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


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

    async def text(self) -> str:
        res = await self.call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''",
                              returnByValue=True)
        return res["result"].get("value") or ""

    async def html(self) -> str:
        res = await self.call("Runtime.evaluate", expression="document.documentElement.outerHTML",
                              returnByValue=True)
        return res["result"].get("value") or ""

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
        path.write_bytes(base64.b64decode(res["data"]))


async def _with_page(url: str, fn, port: int):
    import websockets

    deadline = time.monotonic() + 30
    target = None
    while time.monotonic() < deadline and target is None:
        try:
            pages = httpx.get(f"http://127.0.0.1:{port}/json", timeout=2).json()
            target = next((p for p in pages if p.get("type") == "page"), None)
        except (httpx.HTTPError, ValueError):
            await asyncio.sleep(0.3)
    if target is None:
        raise RuntimeError("chromium's DevTools endpoint did not come up")
    async with websockets.connect(target["webSocketDebuggerUrl"], max_size=64 * 2**20) as ws:
        page = Page(ws)
        await page.call("Page.enable")
        await page.call("Page.navigate", url=url)
        return await fn(page)


def with_browser(url: str, fn, debug_port: int):
    """Start Chromium, open ``url``, run ``await fn(page)`` and return its result; the browser is always closed.

    Raises:
        RuntimeError: Chromium is missing or its DevTools endpoint never answered.
    """
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed: run `make sysdeps` (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="ghnerf-chromium-")
    proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={debug_port}",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return asyncio.run(_with_page(url, fn, debug_port))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
