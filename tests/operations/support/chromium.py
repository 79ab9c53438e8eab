"""A headless Chromium driven over the Chrome DevTools protocol (CDP), for UI tests.

Why CDP and not ``--dump-dom``: the Temporal UI is a single-page app that keeps
long-polling the server, so "page finished loading" never happens; we need to set the
UI's own preferences (localStorage), navigate, wait until a text appears, then take a
screenshot. CDP does all of that with one websocket and a handful of commands.

The launch flags suit a closed network: no background networking, no component updates,
no sync, no QUIC, a fresh profile directory per browser.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
CLOSED_NETWORK_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--window-size=1680,1000",
)


def find_chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(RuntimeError):
    """A CDP command failed, or the page never showed what we waited for."""


class Page:
    """One browser tab: send CDP commands, evaluate JS, wait for text, screenshot."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 30.0) -> Any:
        msg_id = next(self._ids)
        await self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CdpError(f"no answer to {method} within {timeout}s")
            raw = await asyncio.wait_for(self._ws.recv(), timeout=remaining)
            reply = json.loads(raw)
            if reply.get("id") != msg_id:
                continue  # an event, or a late answer: not what we wait for
            if "error" in reply:
                raise CdpError(f"{method}: {reply['error']}")
            return reply.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise CdpError(f"JS error: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})

    async def text(self) -> str:
        value = await self.evaluate("document.body ? document.body.innerText : ''")
        return str(value or "")

    async def wait_for_text(self, *needles: str, timeout: float = 60.0, poll: float = 0.5) -> str:
        """Poll the page's visible text until every needle shows (returns that text)."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = await self.text()
            if all(n in text for n in needles):
                return text
            await asyncio.sleep(poll)
        missing = [n for n in needles if n not in text]
        raise CdpError(f"page never showed {missing}; it showed:\n{text[:3000]}")

    async def screenshot(self, path: Path) -> Path:
        result = await self.send("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(result["data"]))
        return path


@asynccontextmanager
async def chromium_page(binary: str, profile_dir: Path, *, start_timeout: float = 30.0) -> AsyncIterator[Page]:
    """Launch a headless Chromium with a fresh profile and yield its first tab."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    port_file = profile_dir / "DevToolsActivePort"
    log = (profile_dir.parent / f"{profile_dir.name}-chromium.log").open("wb")
    proc = subprocess.Popen(
        [binary, *CLOSED_NETWORK_FLAGS, f"--user-data-dir={profile_dir}", "--remote-debugging-port=0", "about:blank"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None:
                raise CdpError(f"chromium exited with {proc.returncode}; see {log.name}")
            if time.monotonic() > deadline:
                raise CdpError("chromium did not open its DevTools port")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            targets = (await http.get("/json/list")).json()
        page_target = next(t for t in targets if t.get("type") == "page")
        async with connect(page_target["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024) as ws:
            page = Page(ws)
            await page.send("Page.enable")
            await page.send("Runtime.enable")
            yield page
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
