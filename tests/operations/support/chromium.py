"""Debian's headless Chromium, driven by Playwright, for the UI tests.

Playwright drives the browser installed by the machine's package manager
(``executable_path``): nothing downloads a browser build (``playwright install`` is never
run). The Temporal UI is a single-page app that keeps long-polling the server, so "page
loaded" never happens; Playwright's locators wait for what the test expects instead.

The flags suit a closed network and a root user in a container: no sandbox (Chromium
refuses to start as root with one), no GPU, no QUIC, no first-run, background
networking, component updates or sync; a fresh profile directory per browser.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Page, ViewportSize, async_playwright

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))  # Debian's package `chromium`
CLOSED_NETWORK_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
VIEWPORT: ViewportSize = {"width": 1680, "height": 1000}


def find_chromium() -> Path | None:
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else None


@asynccontextmanager
async def chromium_page(binary: Path, profile_dir: Path) -> AsyncIterator[Page]:
    """A headless Chromium with a fresh profile (``profile_dir``, created empty); its first tab."""
    profile_dir.mkdir(parents=True, exist_ok=False)
    async with async_playwright() as playwright:
        # A persistent context is how Playwright takes a user-data-dir of our choosing.
        context = await playwright.chromium.launch_persistent_context(
            profile_dir, executable_path=binary, headless=True, args=list(CLOSED_NETWORK_FLAGS), viewport=VIEWPORT
        )
        try:
            yield context.pages[0] if context.pages else await context.new_page()
        finally:
            await context.close()
