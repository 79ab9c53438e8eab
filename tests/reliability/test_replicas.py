"""Scale-out by replicas survives losing one of each: two receivers (behind one balanced address,
as D1 knows one URL), two workers and two issuer-API replicas run as OS processes against one
Temporal server and one D1; in the middle of a batch of orders and of D1's notification stream
one of each is killed (SIGKILL) while it holds work, and nothing is lost or duplicated."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.card_order import Outcome
from contracts.card_order import workflow_id as order_workflow_id
from stack.balancer import Balancer, balance
from stack.servers import LOOPBACK, free_port, wait_http
from tests.conftest import ISSUER_ID, new_request_id
from tests.reliability.procstack import ProcStack, proc_stack
from tests.reliability.test_faults import final_views, releasing_holds, submit_activities, until_held
from tests.support.exactly_once import assert_exactly_once, by_card, until
from tests.support.orders import sample_order

pytestmark = pytest.mark.asyncio

ORDERS = 40
HELD = 4  # D1 holds the answers to its first submissions: workers die inside those calls
CONCURRENCY = 6


async def start_receivers(st: ProcStack, n: int) -> list[tuple[int, subprocess.Popen[bytes]]]:
    out = []
    for i in range(n):
        port = free_port()
        env = st.local.env("receiver", {"RECEIVER_PORT": str(port)})
        out.append((port, st.supervisor.start(f"receiver-{i}", st.local.argv("receiver"), env)))
    for port, proc in out:
        await wait_http(f"http://{LOOPBACK}:{port}/healthz", "receiver", alive=partial(_alive, proc))
    return out


async def start_apis(st: ProcStack, n: int) -> list[tuple[str, subprocess.Popen[bytes]]]:
    out = []
    for i in range(n):
        port = free_port()
        env = st.local.env("issuer-api", {"ISSUER_API_PORT": str(port)})
        out.append(
            (f"http://{LOOPBACK}:{port}", st.supervisor.start(f"issuer-api-{i}", st.local.argv("issuer-api"), env))
        )
    for url, proc in out:
        await wait_http(f"{url}/v1/health/ready", "issuer API", alive=partial(_alive, proc))
    return out


def _alive(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"process {proc.pid} exited with {proc.returncode}")


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


class ApiClients:
    """A bank's system with two API addresses: orders in turn, a failed call retried on the
    other replica under the same issuerRequestId (the API answers 200 for a repeat)."""

    def __init__(self, urls: list[str], token: str) -> None:
        headers = {"authorization": f"Bearer {token}"}
        self.http = [httpx.AsyncClient(base_url=u, headers=headers, timeout=30) for u in urls]
        self.open = Counter[int]()  # requests sent and not answered, by replica
        self.accepted = Counter[int]()  # 201 or 200, by replica
        self.cut = Counter[int]()  # requests cut in flight by a kill, by replica
        self.refused = Counter[int]()  # connections refused (the replica is gone), by replica
        self._turn = itertools.cycle(range(len(urls)))

    async def submit(self, rid: str) -> None:
        first = next(self._turn)
        path = f"/v1/issuers/{ISSUER_ID}/card-orders"
        for attempt in range(20):
            i = (first + attempt) % len(self.http)
            self.open[i] += 1
            try:
                resp = await self.http[i].post(path, json=sample_order(rid))
            except httpx.ConnectError:
                self.refused[i] += 1
                continue
            except httpx.TransportError:
                self.cut[i] += 1
                continue
            finally:
                self.open[i] -= 1
            if resp.status_code in (200, 201):
                self.accepted[i] += 1
                return
            assert resp.status_code in (429, 503), f"{rid}: {resp.status_code} {resp.text}"
            await asyncio.sleep(0.2)  # shed under load: try again
        raise AssertionError(f"{rid}: no API replica accepted it")

    async def aclose(self) -> None:
        for http in self.http:
            await http.aclose()


async def worker_pids_holding(st: ProcStack, held: list[dict[str, object]], rid_of: dict[str, str]) -> Counter[int]:
    """Which worker process runs each held D1 call (Temporal's view: the activity's worker identity)."""
    pids = Counter[int]()
    for hold in held:
        [pending] = await submit_activities(st, rid_of[str(hold["cardId"])])
        pids[int(pending.last_worker_identity.split("@")[0])] += 1
    return pids


async def test_one_of_each_replica_killed_in_the_middle_of_a_batch(tmp_path: Path) -> None:
    async with (
        proc_stack(tmp_path, step_delay_ms=50, d1_read_timeout_s=120, in_process_receiver=False) as st,
        releasing_holds(st),
    ):
        hold = {"hold": True, "afterProcessing": True, "count": HELD}
        await st.emulator("POST", "/_emulator/faults", json={"orderFailures": [hold]})
        receivers = await start_receivers(st, 2)
        workers = [st.start_worker(), st.start_worker()]
        apis = await start_apis(st, 2)
        token = st.local.paths.issuer_api.demo_token.read_text().strip()
        clients = ApiClients([url for url, _ in apis], token)
        ids = [new_request_id("replica") for _ in range(ORDERS)]
        cards = by_card(ids)
        async with balance(st.local.ports.receiver, [port for port, _ in receivers]) as balancer:
            try:
                sem = asyncio.Semaphore(CONCURRENCY)

                async def one(rid: str) -> None:
                    async with sem:
                        await clients.submit(rid)

                submitting = asyncio.gather(*(one(rid) for rid in ids))
                report = await kill_one_of_each(st, clients, balancer, apis, workers, receivers, cards)
                await asyncio.wait_for(submitting, 120)
            finally:
                await clients.aclose()
            views = await final_views(st, ids, timeout=150)
            survivor = balancer.backend(receivers[1][0])
            after_kill = survivor.connections - report["survivor_connections_at_kill"]
        outcomes = Counter(v.state.outcome for v in views.values())
        assert outcomes == {Outcome.DELIVERED: ORDERS}, outcomes
        stats = await st.emulator_stats()
        # One submission per card: the killed worker's cut calls repeated once by the other worker.
        assert_exactly_once(stats, cards, forced=report["cut_cards"], max_repeats=1)
        assert stats["notificationsGivenUp"] == 0
        assert stats["notificationsSent"] > report["notifications_at_kill"], "no notification after the kill"
        assert after_kill > 0, "the surviving receiver took nothing after the kill"
        # Orders through both replicas, the killed one included, and each exists once in Temporal.
        assert sum(clients.accepted.values()) == ORDERS and clients.accepted[1] > 0, clients.accepted
        assert st.client is not None
        seen = [wf.id async for wf in st.client.list_workflows('WorkflowType = "CardOrderWorkflow"')]
        assert sorted(seen) == sorted(order_workflow_id(ISSUER_ID, rid) for rid in ids)
        api = {"accepted": clients.accepted, "cut": clients.cut, "refused": clients.refused}
        failures = stats["notificationFailures"] - report["notification_failures_at_kill"]
        print(f"replica kill: {report}, API {api}, D1 notifications failed after the kill (retried): {failures}")


async def kill_one_of_each(
    st: ProcStack,
    clients: ApiClients,
    balancer: Balancer,
    apis: list[tuple[str, subprocess.Popen[bytes]]],
    workers: list[subprocess.Popen[bytes]],
    receivers: list[tuple[int, subprocess.Popen[bytes]]],
    cards: dict[str, str],
) -> dict[str, Any]:
    """Each kill at a moment it holds work: the API with requests open, the worker with D1 calls
    running (Temporal's view), the receiver with D1's connections open mid-stream; returned."""
    report: dict[str, Any] = {}

    # The API replica: with orders taken by it and requests of the batch open on it.
    async def api_busy() -> bool:
        return clients.accepted[1] >= 3 and clients.open[1] > 0

    await until(api_busy, timeout=60, what="API replica 1 never had requests open")
    report["api_open_at_kill"] = clients.open[1]
    kill(apis[1][1])

    # The worker: the one running held D1 calls (started, unanswered activities).
    held = await until_held(st, HELD)
    pids = await worker_pids_holding(st, held, cards)
    victim = next(w for w in workers if w.pid == pids.most_common(1)[0][0])
    report["worker_calls_at_kill"] = pids[victim.pid]
    assert report["worker_calls_at_kill"], pids
    kill(victim)

    async def cut_calls() -> list[str]:
        current = (await st.emulator("GET", "/_emulator/holds")).json()["holds"]
        return [h["cardId"] for h in current if h["clientGone"]]

    report["cut_cards"] = await until(cut_calls, timeout=30, what="the killed worker's D1 calls were not cut")

    # The receiver: while D1's notifications stream through it (the orders not held move on).
    first = balancer.backend(receivers[0][0])

    async def receiver_busy() -> bool:
        return first.connections >= 2 and first.open > 0

    await until(receiver_busy, timeout=60, what="receiver 0 never had notifications in flight")
    at_kill = await st.emulator_stats()
    report["notifications_at_kill"] = at_kill["notificationsSent"]
    report["notification_failures_at_kill"] = at_kill["notificationFailures"]
    report["receiver_open_at_kill"] = first.open
    report["receiver_connections_at_kill"] = first.connections
    report["survivor_connections_at_kill"] = balancer.backend(receivers[1][0]).connections
    kill(receivers[0][1])
    await st.emulator("POST", "/_emulator/holds/release")
    return report
