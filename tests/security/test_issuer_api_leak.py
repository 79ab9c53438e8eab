"""The issuer API process holds clear card data for the length of one request, and nowhere after:
orders with distinctive card data (valid ones, an invalid one, a batch, a conflicting retry) go
through ``python -m issuer_api`` as a real process over mutual TLS; then its output (with the
redaction layer it installs), every span it made (raw, through the test-only span file of
observability/tracing.py) and every answer it gave are searched for the PAN, CVVs, PVV, expiry,
name and tracks, as tests/security/test_leak.py searches the other processes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from observability import tracing
from security.tls import client_ssl_context
from stack.processes import Supervisor
from stack.servers import wait_http
from tests.security.conftest import MtlsStack
from tests.security.support import ISSUER_ID, LEAK_PAN, find_leaks, leak_card_data, leak_track_data
from tests.support.orders import sample_order

STARTER_SPAN = "card_order.submit"


def _order(rid: str, **card: Any) -> dict[str, Any]:
    return sample_order(rid, cardData=leak_card_data(**card), trackData=leak_track_data())


async def test_no_card_data_in_the_issuer_api_process(mtls_stack: MtlsStack, tmp_path: Path) -> None:
    local = mtls_stack.local
    assert local.pki is not None and local.ports.issuer_api is not None
    spans = tmp_path / "issuer-api.spans.jsonl"
    sup = Supervisor(tmp_path / "logs")
    env = {**local.env("issuer-api"), tracing.TEST_SPAN_FILE_VARIABLE: str(spans), "TELEMETRY_LOG_LEVEL": "DEBUG"}
    sup.start("issuer-api", local.argv("issuer-api"), env)
    pair = local.pki.issuer_client(ISSUER_ID)
    tls = client_ssl_context(ca_file=local.pki.ca_cert, cert_file=pair.cert, key_file=pair.key)
    token = local.paths.issuer_api.demo_token.read_text().strip()
    answers: list[str] = []
    stamp = tmp_path.name[-8:].replace("_", "-")
    rids = [f"leak-api-{stamp}-{i}" for i in range(3)]
    try:
        await wait_http(f"{local.issuer_api_url}/v1/health/ready", "issuer API", verify=tls, alive=sup.check_alive)
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=local.issuer_api_url, verify=tls, headers=headers, timeout=60) as http:
            path = f"/v1/issuers/{ISSUER_ID}/card-orders"

            async def keep(resp: httpx.Response, *expected: int) -> httpx.Response:
                answers.append(resp.text)
                answers.append(json.dumps(dict(resp.headers)))
                assert resp.status_code in expected, resp.text
                return resp

            for rid in rids:
                await keep(await http.post(path, json=_order(rid)), 201)
            await keep(await http.post(path, json=_order(rids[0])), 200)
            # Another request under the same id (the fingerprint leaves the card data out: docs/issuer-api.md).
            await keep(await http.post(path, json={**_order(rids[0]), "consumerId": "cust-999999"}), 409)
            bad = _order(f"leak-api-{stamp}-bad", exp="1399", cvv1="61")
            bad["shipment"]["deliveryAddress"]["zipCode"] = LEAK_PAN
            await keep(await http.post(path, json=bad), 400)
            batch = [_order(f"leak-api-{stamp}-b{i}") for i in range(2)] + [_order(f"leak-api-{stamp}-b9", pvv="1")]
            await keep(await http.post(f"/v1/issuers/{ISSUER_ID}/card-order-batches", json=batch), 202)
            for rid in rids:
                for _ in range(300):
                    view = (await keep(await http.get(f"{path}/{rid}"), 200)).json()
                    if view["outcome"]:
                        break
                    await asyncio.sleep(0.2)
                assert view["outcome"] == "DELIVERED", view
                await keep(await http.get(f"{path}/{rid}/timeline"), 200)
            await keep(await http.get(path, params={"limit": 50}), 200)
        sup.check_alive()
    finally:
        sup.stop_all(timeout=20)
    log = sup.log("issuer-api").read_text()
    assert "requested by make-run-demo" in log, log[-3000:]
    names = {json.loads(line)["name"] for line in spans.read_text().splitlines() if line.strip()}
    assert STARTER_SPAN in names, names
    hits = find_leaks("issuer API process output", [log])
    hits += find_leaks("issuer API span", spans.read_text().splitlines())
    hits += find_leaks("issuer API answer", answers)
    assert hits == [], "card data leaked:\n" + "\n".join(hits[:30])
