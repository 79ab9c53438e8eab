"""SIGTERM finishes or hands back in-flight work: the worker completes the D1 call it is
in, the receiver stops accepting and drains."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from contracts.card_order import Outcome
from d1.paths import notification_path
from settings import ReceiverSettings
from stack.servers import free_port
from tests.conftest import ISSUER_ID, new_request_id
from tests.reliability.procstack import ROOT, proc_stack
from tests.support.exactly_once import assert_exactly_once, by_card, until
from tests.support.notifications import operation
from tests.support.orders import sample_order

pytestmark = pytest.mark.asyncio


async def test_sigterm_on_the_worker_finishes_the_d1_call_in_flight(tmp_path: Path) -> None:
    async with proc_stack(tmp_path) as st:
        assert st.orders is not None
        # D1 takes 1.5 s to answer the next order: the worker gets SIGTERM in the middle.
        await st.emulator("POST", "/_emulator/faults", json={"orderFailures": [{"delayMs": 1500, "count": 1}]})
        worker = st.start_worker()
        rid = new_request_id("term")
        await st.orders.submit(sample_order(rid))

        async def received() -> bool:
            return bool((await st.emulator_stats())["orderRequests"] >= 1)

        await until(received, timeout=30, what="D1 never received the order", every=0.02)
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 30) == 0
        log = (tmp_path / "worker-0.log").read_text()
        assert "shutting down: finishing in-flight work" in log
        st.start_worker()
        view = await asyncio.wait_for(st.orders.wait(ISSUER_ID, rid), timeout=60)
        assert view.state.outcome == Outcome.DELIVERED
        # With a worker running again, the call finished during the shutdown was not retried:
        # D1 saw one request for the card, no repeat.
        assert_exactly_once(await st.emulator_stats(), by_card([rid]))


class HoldingProxy:
    """A TCP relay in front of Temporal that can hold what the receiver sends it: while
    held, a request the receiver accepted waits on its signal RPC, unanswered, for as long
    as the test wants (the proof that it was in flight)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.released = asyncio.Event()
        self.released.set()
        self.held_bytes = 0
        self.port = 0

    async def __aenter__(self) -> HoldingProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.released.set()
        self._server.close()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, *, holdable: bool) -> None:
            try:
                while data := await r.read(65536):
                    if holdable and not self.released.is_set():
                        self.held_bytes += len(data)
                        await self.released.wait()
                    w.write(data)
                    await w.drain()
            except ConnectionError:
                pass
            finally:
                w.close()

        await asyncio.gather(pump(client_r, server_w, holdable=True), pump(server_r, client_w, holdable=False))


async def test_sigterm_on_the_receiver_drains_and_stops_accepting(tmp_path: Path) -> None:
    async with proc_stack(tmp_path) as st, HoldingProxy(st.temporal_port) as temporal:
        port = free_port()
        receiver = st.local.override(ReceiverSettings, port=port)  # beside the stack's in-process one
        log = open(tmp_path / "receiver.log", "wb")
        proc = subprocess.Popen(
            receiver.argv("receiver"),
            env={**receiver.env("receiver"), "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal.port}"},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            for _ in range(200):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    assert proc.poll() is None, (tmp_path / "receiver.log").read_text()
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("receiver did not come up")
            body = {
                "operations": [
                    operation("CARD_PROD_READY", card_id=f"card-{i}", request_id=f"nope-{i}") for i in range(20)
                ]
            }
            temporal.released.clear()  # from now on the receiver's RPCs to Temporal wait
            in_flight = [asyncio.create_task(http.post(notification_path(ISSUER_ID), json=body)) for _ in range(10)]
            for _ in range(250):
                if temporal.held_bytes:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # every request read by the receiver, each waiting on Temporal
            # In flight when the signal arrives: accepted (their RPCs reached Temporal's side), unanswered.
            assert temporal.held_bytes > 0, "the receiver never called Temporal"
            assert not any(t.done() for t in in_flight), [t.result() for t in in_flight if t.done()]
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            temporal.released.set()
            answers = await asyncio.gather(*in_flight, return_exceptions=True)
        # Every request in flight was answered, none dropped: a transport error is a failure.
        assert [getattr(a, "status_code", a) for a in answers] == [204] * len(in_flight), answers
        # uvicorn drains, then re-raises the SIGTERM it captured (exit by that signal, by design).
        assert await asyncio.to_thread(proc.wait, 30) in (0, -signal.SIGTERM)
        assert "Finished server process" in (tmp_path / "receiver.log").read_text()
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(base_url=url, timeout=2) as http:
                await http.post(notification_path(ISSUER_ID), json=body)
