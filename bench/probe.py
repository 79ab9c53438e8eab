"""Knowing that a signal was processed, at no cost to Temporal: a UDP datagram per handled signal.

A real order's D1 notifications arrive minutes to days apart, so each one is its own
workflow task. To give both the product and the baseline that shape at full load, the
driver sends an order's next signal (notification) only after the worker has handled the
previous one: the workflow task that carried it has started, so the next signal makes a
task of its own. Pacing alone cannot promise it: once the workers fall behind, paced
signals queue up and the server folds them into fewer tasks (the bench's first runs showed
three signals per task at 80 orders in flight).

The probe is a worker interceptor, the same in both workers: when a workflow's first task
runs its main method, and after each signal handler ran (never on replay), it sends the
workflow id in one loopback datagram to the driver, which counts them per workflow
(1 = started, 1 + k = k signals handled). No query,
update, RPC or history event is added on either side; the histories still show, after
the run, whether each signal had its own task (bench/history.py).

``python -m bench.probe HOST:PORT`` runs the product worker (``worker.py``, unchanged) with
the probe added to its interceptors.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections import defaultdict
from typing import Any

from temporalio import workflow
from temporalio.worker import (
    ExecuteWorkflowInput,
    HandleSignalInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

PROBE_ADDRESS_ARG = "--probe"


class _Sender:
    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def send(self, workflow_id: str) -> None:
        try:
            self.sock.sendto(workflow_id.encode(), self.address)
        except OSError:
            pass  # a lost datagram only makes the driver wait for its time-out


_sender: _Sender | None = None


def _report() -> None:
    if _sender is not None and not workflow.unsafe.is_replaying():
        with workflow.unsafe.sandbox_unrestricted():
            _sender.send(workflow.info().workflow_id)


class _SignalProbe(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        _report()
        return await super().execute_workflow(input)

    async def handle_signal(self, input: HandleSignalInput) -> None:
        await super().handle_signal(input)
        _report()


class SignalProbe(Interceptor):
    """Worker interceptor: one datagram to ``address`` per signal handled (never on replay)."""

    def __init__(self, address: tuple[str, int]) -> None:
        global _sender
        _sender = _Sender(address)

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _SignalProbe


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


class ProbeListener(asyncio.DatagramProtocol):
    """The driver's side: per workflow, 1 once its first task ran, plus one per signal handled."""

    def __init__(self) -> None:
        self.handled: defaultdict[str, int] = defaultdict(int)
        self._waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.timeouts = 0

    @classmethod
    async def start(cls) -> ProbeListener:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", 0))
        return proto

    @property
    def address(self) -> str:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return f"{host}:{port}"

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        wid = data.decode(errors="replace")
        self.handled[wid] += 1
        waiters = self._waiters.get(wid)
        if waiters:
            count = self.handled[wid]
            for entry in [w for w in waiters if w[0] <= count]:
                waiters.remove(entry)
                if not entry[1].done():
                    entry[1].set_result(None)
            if not waiters:
                del self._waiters[wid]

    async def wait_handled(self, workflow_id: str, count: int, timeout_s: float = 30.0) -> bool:
        """Until ``workflow_id`` has reported ``count`` times (started, then signals); False after
        ``timeout_s`` (counted)."""
        if self.handled[workflow_id] >= count:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(workflow_id, []).append((count, future))
        try:
            await asyncio.wait_for(future, timeout_s)
            return True
        except TimeoutError:
            self.timeouts += 1
            return False

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def main() -> None:
    """The product worker, unchanged, with the probe among its interceptors."""
    import worker as product
    from observability.process import exit_without_finalizing

    address = parse_address(sys.argv[sys.argv.index(PROBE_ADDRESS_ARG) + 1])
    probe = SignalProbe(address)
    base = product.Worker

    class ProbedWorker(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, interceptors: Any = (), **kwargs: Any) -> None:
            super().__init__(*args, interceptors=[*interceptors, probe], **kwargs)

    product.Worker = ProbedWorker  # type: ignore[misc]
    asyncio.run(product.main())
    exit_without_finalizing(0)


if __name__ == "__main__":
    main()
