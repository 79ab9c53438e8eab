"""The Temporal Web UI is the order console: a real headless Chromium (Debian's, driven by
Playwright) opens the workflow list filtered by ``CardId`` and finds the order with its
production status."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.async_api import expect

from contracts.card_order import Outcome
from tests.conftest import ISSUER_ID, new_request_id
from tests.operations.conftest import OpsStack
from tests.operations.support.chromium import CHROMIUM, chromium_page, find_chromium
from tests.support.orders import sample_order

pytestmark = pytest.mark.asyncio(loop_scope="session")

# The UI keeps its table columns in localStorage, per namespace (an operator sets them
# once with "Configure Columns"); the test sets the same preference directly.
COLUMNS_KEY = "namespace-workflow-table-columns"
COLUMNS = ["Status", "Workflow ID", "CardId", "ProductionStatus", "ShipmentStatus", "OrderOutcome", "Start"]
WAIT_MS = 60_000


def _chromium() -> Path:
    found = find_chromium()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is not installed (.ci/run installs it with apt-get)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    return found


async def test_ui_lists_the_order_by_card_id_with_its_production_status(
    ops: OpsStack, calm_emulator: OpsStack, output_dir: Path, tmp_path: Path
) -> None:
    browser = _chromium()
    rid = new_request_id("ui")
    card = f"card-{rid}"
    submitted = await ops.orders.submit(sample_order(rid, card_id=card))
    assert (await ops.orders.wait(ISSUER_ID, rid)).state.outcome == Outcome.DELIVERED

    query = f'CardId="{card}"'
    url = f"{ops.ui_url}/namespaces/default/workflows?query={quote(query)}"
    shot = output_dir / "workflow-list-by-card.png"
    async with chromium_page(browser, tmp_path / "chromium-profile") as page:
        await page.goto(ops.ui_url + "/")
        await expect(page.get_by_text("Workflows").first).to_be_visible(timeout=WAIT_MS)
        columns = {"default": [{"label": c} for c in COLUMNS]}
        await page.evaluate("([key, value]) => localStorage.setItem(key, value)", [COLUMNS_KEY, json.dumps(columns)])
        await page.goto(url)
        # The order's row: its workflow id, its card, and the search attributes it set.
        row = page.get_by_role("row").filter(has_text=submitted.workflow_id)
        for text in (card, "CARD_SHIPPED", "Delivered", "DELIVERED"):
            await expect(row).to_contain_text(text, timeout=WAIT_MS)
        await expect(page.get_by_role("row").filter(has_text=card)).to_have_count(1)
        row_text = await row.inner_text()
        await page.screenshot(path=shot)
    assert card in row_text and "CARD_SHIPPED" in row_text and "Delivered" in row_text and "DELIVERED" in row_text
    assert shot.stat().st_size > 10_000
