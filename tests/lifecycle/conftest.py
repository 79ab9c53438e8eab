"""A product stack whose receiver forwards D1's Card Activation calls to a stand-in of the
bank's CMS (stack/bank_cms.py), with its own task queue and program file (the
tests change ``lifecycle`` rules in it)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from d1.program import DEFAULT_PROGRAM_FILE
from settings import D1ClientSettings, ReceiverSettings
from stack.bank_cms import BankCms, serving
from stack.local import LocalStack
from starter.api import CardOrders
from tests.conftest import ISSUER_ID, running_product

TASK_QUEUE = "lifecycle-card-orders"
CMS_TOKEN = "cms-test-token"


@dataclass
class Life:
    client: Client
    orders: CardOrders
    cms: BankCms
    emulator_url: str
    program_file: Path
    local: LocalStack

    def cli_env(self) -> dict[str, str]:
        """What the stack sets for ``python -m starter`` against it (the CLI runs in-process)."""
        return self.local.variables("starter")

    async def emulator_order(self, card_id: str) -> dict[str, Any]:
        """The sandbox's view of the card's order (what D1 was sent, no card data)."""
        found = (await self.emulator("GET", "/_emulator/orders", params={"cardId": card_id})).json()["orders"]
        assert len(found) == 1, found
        view: dict[str, Any] = found[0]["_emulator"]
        return view

    async def emulator(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.emulator_url, timeout=60) as http:
            return await http.request(method, path, **kw)

    async def activate(self, card_id: str, **kw: Any) -> dict[str, Any]:
        """D1's Card Activation call, as the emulator makes it (with D1's retries)."""
        body = {"issuerId": ISSUER_ID, "cardId": card_id, **kw}
        response = await self.emulator("POST", "/_emulator/activate", json=body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    @contextmanager
    def lifecycle(self, **rules: Any) -> Iterator[None]:
        """The program's ``lifecycle`` rules changed for the block (the product re-reads the file)."""
        original = self.program_file.read_text(encoding="utf-8")
        program = json.loads(original)
        program["lifecycle"] = {**program.get("lifecycle", {}), **rules}
        self._write(json.dumps(program))
        try:
            yield
        finally:
            self._write(original)

    def _write(self, text: str) -> None:
        before = self.program_file.stat().st_mtime_ns
        self.program_file.write_text(text, encoding="utf-8")
        # The program is cached by modification time: make sure it moves.
        os.utime(self.program_file, ns=(before + 1_000_000, before + 1_000_000))


@pytest_asyncio.fixture(scope="session")
async def life(
    temporal_env: WorkflowEnvironment, codec_keys_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Life]:
    tmp = tmp_path_factory.mktemp("life")
    program_file = tmp / "program.json"
    shutil.copy(DEFAULT_PROGRAM_FILE, program_file)
    token_file = tmp / "cms-token"
    token_file.write_text(CMS_TOKEN, encoding="utf-8")
    token_file.chmod(0o600)
    cms = BankCms(token=CMS_TOKEN)
    async with serving(cms) as cms_url:
        receiver = {
            "cms_activation_url": cms.url_template(cms_url),
            "cms_token_file": token_file,
            "program_file": program_file,
        }
        async with running_product(
            temporal_env.client,
            tmp,
            task_queue=TASK_QUEUE,
            codec_keys_file=codec_keys_file,
            overrides={ReceiverSettings: receiver, D1ClientSettings: {"program_file": program_file}},
        ) as p:
            orders = CardOrders(
                temporal_env.client, task_queue=TASK_QUEUE, timing=p.stack.order_timing(), edge=p.stack.order_edge()
            )
            yield Life(temporal_env.client, orders, cms, p.emulator_url, program_file, p.stack)
