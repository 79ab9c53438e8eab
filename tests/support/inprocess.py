"""The stack's processes run inside the current event loop (the tests): the emulator and
the receiver as real HTTP servers on their loopback ports, the worker on a given client.

Each part is built from the settings objects of a :class:`stack.local.LocalStack`, as its
own process builds them from the variables ``LocalStack.env`` renders (receiver/__main__.py,
emulator/__main__.py, worker.py): same TLS, same authentication, same limits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from emulator.app import create_app as create_emulator_app
from emulator.config import EmulatorSettings, uvicorn_tls_options
from emulator.state import EmulatorState
from events.activities import event_activities
from receiver.activation import ActivationService
from receiver.app import create_app as create_receiver_app
from receiver.auth import ReceiverAuth
from receiver.routing import NotificationRouter
from security.sealing import RECEIVER, WORKER
from security.transport import receiver_server_options
from settings import D1ClientSettings, ReceiverSettings
from stack.local import LocalStack
from stack.servers import serve
from tests.support.senders import as_role
from worker import build_workers, d1_activities


@asynccontextmanager
async def serve_emulator(stack: LocalStack, *, app: Any = None) -> AsyncIterator[str]:
    """The emulator on the stack's emulator port; pass ``app`` to keep ``app.state.emulator``."""
    settings: EmulatorSettings = stack.emulator_settings()
    async with serve(
        app or create_emulator_app(settings), port=settings.port, host=settings.host, **uvicorn_tls_options(settings)
    ) as url:
        yield url


@asynccontextmanager
async def serve_receiver(stack: LocalStack, router: NotificationRouter) -> AsyncIterator[str]:
    """The receiver on the stack's receiver port (mutual TLS and OAuth as the spec says)."""
    rs: ReceiverSettings = stack.receiver_settings()
    app = create_receiver_app(
        router,
        max_body_bytes=rs.max_body_bytes,
        max_operations=rs.max_operations,
        auth=ReceiverAuth.from_settings(rs),
        activation=ActivationService.from_settings(rs, router.client, router.task_queue),
    )
    async with serve(app, port=rs.port, host=rs.host, **receiver_server_options(rs)) as url:
        yield url


@asynccontextmanager
async def run_worker(stack: LocalStack, client: Client) -> AsyncIterator[Worker]:
    """The product's worker for the stack's task queue, calling the stack's emulator (and the
    events' worker beside it, as in the worker process)."""
    async with (
        d1_activities(stack.d1_settings()) as acts,
        event_activities(stack.events_settings()) as events,
        AsyncExitStack() as running,
    ):
        workers = [
            await running.enter_async_context(w) for w in build_workers(client, stack.spec.task_queue, acts, events)
        ]
        yield workers[0]


@dataclass
class InProcessProduct:
    """A running in-process product: where its servers are and what they were built from."""

    stack: LocalStack
    emulator_url: str
    receiver_url: str
    router: NotificationRouter
    emulator: EmulatorState
    d1_settings: D1ClientSettings
    receiver_settings: ReceiverSettings


@asynccontextmanager
async def running_product(stack: LocalStack, client: Client) -> AsyncIterator[InProcessProduct]:
    """Receiver, emulator and worker of ``stack``, all talking to the Temporal behind ``client``."""
    # Each process seals as its role (tests/support/senders.py).
    router = NotificationRouter(as_role(client, RECEIVER), stack.spec.task_queue)
    emulator_app = create_emulator_app(stack.emulator_settings())
    async with (
        serve_receiver(stack, router) as receiver_url,
        serve_emulator(stack, app=emulator_app) as emulator_url,
        run_worker(stack, as_role(client, WORKER)),
    ):
        yield InProcessProduct(
            stack=stack,
            emulator_url=emulator_url,
            receiver_url=receiver_url,
            router=router,
            emulator=emulator_app.state.emulator,
            d1_settings=stack.d1_settings(),
            receiver_settings=stack.receiver_settings(),
        )
