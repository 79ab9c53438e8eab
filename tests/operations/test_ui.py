"""The Temporal Web UI is the order console: a real headless Chromium opens the workflow
list filtered by ``CardId`` and finds the order with its production status."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

import pytest

from contracts.card_order import Outcome
from tests.conftest import ISSUER_ID, new_request_id
from tests.operations.conftest import OpsStack
from tests.operations.support.chromium import chromium_page, find_chromium
from tests.support.orders import sample_order

pytestmark = pytest.mark.asyncio(loop_scope="session")

# The UI keeps its table columns in localStorage, per namespace (an operator sets them
# once with "Configure Columns"); the test sets the same preference directly.
COLUMNS_KEY = "namespace-workflow-table-columns"
COLUMNS = ["Status", "Workflow ID", "CardId", "ProductionStatus", "ShipmentStatus", "OrderOutcome", "Start"]


def _chromium() -> str:
    found = find_chromium()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs it with apt-get)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
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
    async with chromium_page(browser, tmp_path / "chromium-profile") as page:
        await page.navigate(ops.ui_url + "/")
        await page.wait_for_text("Workflows", timeout=60)
        columns = {"default": [{"label": c} for c in COLUMNS]}
        await page.evaluate(f"localStorage.setItem({json.dumps(COLUMNS_KEY)}, {json.dumps(json.dumps(columns))})")
        await page.navigate(url)
        text = await page.wait_for_text(submitted.workflow_id, card, "CARD_SHIPPED", "DELIVERED", timeout=60)
        shot = await page.screenshot(output_dir / "workflow-list-by-card.png")
    row = next(line for line in text.splitlines() if submitted.workflow_id in line and card in line)
    assert "CARD_SHIPPED" in row and "Delivered" in row and "DELIVERED" in row
    assert shot.stat().st_size > 10_000
