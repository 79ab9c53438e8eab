"""The intake row of ``make bench``: orders submitted through the issuer API over HTTPS (a client
certificate and a bearer token, as a bank's system calls it) against the Python API
(``CardOrders.submit``) in the same run, same orders, same concurrency. Submission only: the
emulator drops its notifications, and a path ends when every order has started. The API
process's CPU per order is reported beside the edge's CPU (validation, JWE, card-data check)
that the Python API spends in the driver, so the API's own cost shows as the difference."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bench.load import closed_loop
from bench.procs import ISSUER_ID, BenchStack, Meters
from bench.profiling import Profiler
from bench.stats import ratio
from security.tls import client_ssl_context
from stack.samples import sample_order
from starter.api import CardOrders


def _api_client(stack: BenchStack, concurrency: int) -> httpx.AsyncClient:
    local = stack.local
    token = local.paths.issuer_api.demo_token.read_text().strip()
    verify: Any = True
    if local.pki is not None:
        pair = local.pki.issuer_client(ISSUER_ID)
        verify = client_ssl_context(ca_file=local.pki.ca_cert, cert_file=pair.cert, key_file=pair.key)
    return httpx.AsyncClient(
        base_url=local.issuer_api_url,
        verify=verify,
        headers={"authorization": f"Bearer {token}"},
        timeout=120,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )


async def intake_phase(
    stack: BenchStack,
    orders: CardOrders,
    meters: Meters,
    tag: str,
    n: int,
    concurrency: int,
    *,
    profiler: Profiler | None = None,
) -> dict[str, Any]:
    """``profiler``: py-spy on the API process over the HTTPS path only (its CPU figure then
    includes the sampler's small cost to the target)."""
    await stack.emulator("POST", "/_emulator/faults", json={"dropNotifications": True, "stepDelayMs": 0})
    out: dict[str, Any] = {"orders": n, "concurrency": concurrency}
    edge_cpu = 0.0
    failures = {"python": 0, "https": 0}

    async def python_one(i: int) -> None:
        nonlocal edge_cpu
        c0 = time.thread_time()
        prepared = orders.edge.prepare(sample_order(f"{tag}-ip{i:06d}"), timing=orders.timing)
        edge_cpu += time.thread_time() - c0
        await orders.submit_prepared(prepared)

    with meters.phase() as usage:
        wall = await closed_loop(n, concurrency, python_one)
    out["python"] = {
        "wall_s": round(wall, 2),
        "orders_per_s": round(n / wall, 1),
        "edge_cpu_ms_per_order": round(edge_cpu / n * 1000, 2),
        "driver_cpu_ms_per_order": round(usage.processes["driver"].cpu_s / n * 1000, 2),
    }
    async with _api_client(stack, concurrency) as http:
        await http.get("/v1/health/ready")
        # The connections a bank's system holds open (ISSUER_API_KEEP_ALIVE_S), opened before the
        # measure as the Python API's connection to Temporal is: the row compares orders, not
        # mutual-TLS handshakes (one per connection, `concurrency` of them).
        await asyncio.gather(*(http.get("/v1/health/live") for _ in range(concurrency)))

        async def https_one(i: int) -> None:
            resp = await http.post(f"/v1/issuers/{ISSUER_ID}/card-orders", json=sample_order(f"{tag}-ih{i:06d}"))
            if resp.status_code != 201:
                failures["https"] += 1

        if profiler is not None:
            profiler.start("issuer_api", stack.pids["issuer_api"])
        with meters.phase() as usage:
            wall = await closed_loop(n, concurrency, https_one)
        if profiler is not None:
            out["profile"] = profiler.stop()
    api = usage.processes["issuer_api"]
    out["https"] = {
        "wall_s": round(wall, 2),
        "orders_per_s": round(n / wall, 1),
        "api_cpu_ms_per_order": round(api.cpu_s / n * 1000, 2),
        "api_peak_rss_mib": round(api.peak_rss_mib, 1),
        # The bank's side (httpx, TLS): on the same cores here, so it weighs on the row's throughput.
        "client_cpu_ms_per_order": round(usage.processes["driver"].cpu_s / n * 1000, 2),
        "failed": failures["https"],
    }
    out["ratio_orders_per_s"] = ratio(out["https"]["orders_per_s"], out["python"]["orders_per_s"])
    beyond = out["https"]["api_cpu_ms_per_order"] - out["python"]["edge_cpu_ms_per_order"]
    out["api_cpu_ms_beyond_edge"] = round(beyond, 2)
    # The Python API's caller pays the edge and the same Temporal calls: the rest is HTTP, TLS, auth.
    own = out["https"]["api_cpu_ms_per_order"] - out["python"]["driver_cpu_ms_per_order"]
    out["api_cpu_ms_beyond_python"] = round(own, 2)
    await stack.emulator("POST", "/_emulator/faults", json={"dropNotifications": False, "stepDelayMs": 0})
    return out
