"""The intake row of ``make bench``: orders submitted through the issuer API over HTTPS (a client
certificate and a bearer token, as a bank's system calls it) against the Python API
(``CardOrders.submit``) in the same run, same orders, same concurrency. Submission only: the
emulator drops its notifications, and a path ends when every order has started. The API
process's CPU per order is reported beside the edge's CPU (validation, JWE, card-data check)
that the Python API spends in the driver, so the API's own cost shows as the difference."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any

import httpx

from bench.http1 import Http1Connection
from bench.load import closed_loop
from bench.procs import ISSUER_ID, BenchStack, Meters
from bench.profiling import Profiler
from bench.stats import ratio
from security.tls import client_ssl_context
from stack.samples import sample_order
from starter.api import CardOrders


def _client_tls(stack: BenchStack) -> ssl.SSLContext | None:
    pki = stack.local.pki
    if pki is None:
        return None
    pair = pki.issuer_client(ISSUER_ID)
    return client_ssl_context(ca_file=pki.ca_cert, cert_file=pair.cert, key_file=pair.key)


async def _https_lanes(stack: BenchStack, concurrency: int) -> list[Http1Connection]:
    """One connection per lane, opened (mutual-TLS handshake done) before the measure, as a bank's
    system holds its connections open (ISSUER_API_KEEP_ALIVE_S) and as the Python API holds its
    connection to Temporal: the row compares orders, not handshakes. The bench's minimal client
    (bench/http1.py), as for the receiver's rows: httpx would take about a millisecond of the
    shared cores per request from the processes being measured."""
    url = stack.local.issuer_api_url + f"/v1/issuers/{ISSUER_ID}/card-orders"
    lanes = [Http1Connection(url, _client_tls(stack)) for _ in range(concurrency)]
    await asyncio.gather(*(lane.connect() for lane in lanes))
    return lanes


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
    async with httpx.AsyncClient(verify=_client_tls(stack) or True, timeout=30) as http:
        (await http.get(stack.local.issuer_api_url + "/v1/health/ready")).raise_for_status()  # Temporal connected
    token = stack.local.paths.issuer_api.demo_token.read_text().strip()
    auth = f"Authorization: Bearer {token}\r\n".encode()
    bodies = [json.dumps(sample_order(f"{tag}-ih{i:06d}")).encode() for i in range(n)]  # the bank's, not timed
    idle = await _https_lanes(stack, concurrency)

    async def https_one(i: int) -> None:
        lane = idle.pop()
        try:
            if await lane.post(bodies[i], auth) != 201:
                failures["https"] += 1
        finally:
            idle.append(lane)

    if profiler is not None:
        profiler.start("issuer_api", stack.pids["issuer_api"])
    try:
        with meters.phase() as usage:
            wall = await closed_loop(n, concurrency, https_one)
    finally:
        for lane in idle:
            await lane.close()
    if profiler is not None:
        out["profile"] = profiler.stop()
    api = usage.processes["issuer_api"]
    out["https"] = {
        "wall_s": round(wall, 2),
        "orders_per_s": round(n / wall, 1),
        "api_cpu_ms_per_order": round(api.cpu_s / n * 1000, 2),
        "api_peak_rss_mib": round(api.peak_rss_mib, 1),
        # The bank's side (the client, its TLS): on the same cores here, so it weighs on the row's throughput.
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
