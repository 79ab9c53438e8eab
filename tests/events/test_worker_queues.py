"""Which task queues a worker process polls (worker.py build_workers, EVENTS_TASK_QUEUE and
EVENTS_WORKER): the hubs and their deliveries have a queue and a worker of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from events.activities import event_activities
from settings import EventsSettings
from tests.workflows.conftest import test_server as time_skipping_server
from worker import build_workers


@pytest_asyncio.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=time_skipping_server())
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.mark.parametrize(
    ("settings", "queues"),
    [
        ({}, ["orders", "orders-events"]),  # the default: two workers in one process
        ({"task_queue": "card-events"}, ["orders", "card-events"]),
        ({"worker": "off"}, ["orders"]),  # the events run in processes of their own
        ({"worker": "only"}, ["orders-events"]),  # such a process
        ({"task_queue": "orders"}, ["orders"]),  # the hubs on the orders' queue, one worker for both
        ({"task_queue": "orders", "worker": "only"}, ["orders"]),  # nothing of its own to poll
    ],
)
async def test_the_queues_a_worker_process_polls(
    env: WorkflowEnvironment, settings: dict[str, str], queues: list[str]
) -> None:
    async with event_activities(EventsSettings(**settings)) as events:  # type: ignore[arg-type]
        workers = build_workers(env.client, "orders", [], events)
        assert [w.task_queue for w in workers] == queues
