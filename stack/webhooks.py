"""``make run``'s webhook receiver (samples/webhook_receiver.py, the bank's side), registered as an
endpoint of the sample issuer so that the sample order's events arrive signed (docs/events.md)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from events.api import WebhookEndpoints
from settings import REPO_ROOT
from stack.local import LocalStack
from stack.processes import Supervisor
from stack.servers import LOOPBACK, free_port, wait_until

SAMPLE_DESCRIPTION = "make run: samples/webhook_receiver.py"


@dataclass(frozen=True)
class WebhookLog:
    """The receiver's log (appended to across runs) and where this run's part starts."""

    path: Path
    start: int

    def __str__(self) -> str:
        return str(self.path)

    def text(self) -> str:
        with open(self.path, "rb") as f:
            f.seek(self.start)
            return f.read().decode(errors="replace")


async def start_webhook_receiver(sup: Supervisor, stack: LocalStack) -> WebhookLog:
    """Start the receiver, register it (retiring the ones earlier runs registered); its log's path."""
    port = free_port()
    log_path = sup.log("webhook-receiver")
    log = WebhookLog(log_path, log_path.stat().st_size if log_path.exists() else 0)
    secret_file = stack.paths.state_dir / "webhooks" / "secret"
    secret_file.parent.mkdir(parents=True, exist_ok=True)
    secret_file.touch(mode=0o600)
    argv = [sys.executable, str(REPO_ROOT / "samples" / "webhook_receiver.py"), "--port", str(port)]
    sup.start("webhook-receiver", [*argv, "--secret-file", str(secret_file)], stack.base_env())
    # As the issuer API would: the hub takes endpoint management from the edge only (docs/events.md).
    client = await stack.connect(sealer="edge")
    endpoints = WebhookEndpoints(client, stack.spec.task_queue, stack.events_settings())
    for old in await endpoints.list(stack.spec.issuer_id):
        if old.description == SAMPLE_DESCRIPTION and old.status != "disabled":
            await endpoints.disable(stack.spec.issuer_id, old.endpoint_id)

    async def listening() -> bool:
        return "webhook receiver on" in log.text()

    await wait_until(listening, "the webhook receiver", within_s=30, alive=sup.check_alive, poll_s=0.1)
    created = await endpoints.create(
        stack.spec.issuer_id, f"http://{LOOPBACK}:{port}/", ["*"], description=SAMPLE_DESCRIPTION
    )
    secret_file.write_text(created.secret + "\n")
    return log


async def show_received(log: WebhookLog, within_s: float = 15.0) -> None:
    """Print what the receiver verified, once the sample order's last event is in (or after ``within_s``)."""

    async def ended() -> bool:
        return any(word in log.text() for word in ("order.delivered", "order.failed", "order.rejected"))

    try:
        await wait_until(ended, "the sample order's last webhook", within_s=within_s, poll_s=0.2)
    except (TimeoutError, RuntimeError):
        pass
    print(f"webhooks received and verified by samples/webhook_receiver.py ({log}):")
    for line in log.text().splitlines():
        print(f"  {line}")
