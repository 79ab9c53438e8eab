"""``make run``: the whole product on one machine, with embedded defaults.

Starts the Temporal dev server (with its Web UI and the product's search attributes),
the D1 emulator, the notification receiver and the worker as child processes; submits
the sample order; prints its timeline live until it finishes; prints where to look in
the UI; then keeps everything up until Ctrl-C (or exits, with ``--exit-after-sample``).
All state (Temporal's SQLite file, keys, logs) lives under ``.state/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import socket
import ssl
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from contracts import search_attributes as sa
from security.codec import generate_keys_file
from security.operator_tokens import ensure_operator_token
from security.pki import ensure_local_pki
from security.secret_files import write_secret
from security.tls import client_ssl_context
from settings import DEFAULT_STATE_DIR
from stack.onboarding import ensure_issuer_keys
from stack.processes import Supervisor

ROOT = Path(__file__).resolve().parent.parent
ISSUER_ID = "TESTISS001"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # Like the servers themselves: sockets in TIME_WAIT from a previous run do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _wait_http(
    url: str, sup: Supervisor, what: str, within_s: float = 60.0, verify: ssl.SSLContext | bool = True
) -> None:
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(timeout=2, verify=verify) as http:
        while time.monotonic() < deadline:
            sup.check_alive()
            try:
                if (await http.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{what} did not come up at {url} within {within_s:.0f}s")


async def _wait_file(path: Path, sup: Supervisor, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not path.exists():
        sup.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear")
        await asyncio.sleep(0.1)


def dev_server_argv(temporal_bin: str, *, port: int, ui_port: int, db_file: Path, codec_url: str) -> list[str]:
    """``temporal server start-dev`` as make run starts it (tests/security reuse it).

    The UI's codec endpoint carries no credential: ``GET /api/v1/settings`` shows it to anyone,
    and the command line is in every process list. The embedded UI cannot authenticate, so
    the codec server runs with CODEC_SERVER_DEV_TRUST_LOOPBACK (loopback, UI origin, PII masked).
    """
    return [
        temporal_bin,
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(db_file),
        "--ui-codec-endpoint",
        codec_url,
        "--log-level",
        "warn",
        *sa.dev_server_args(),
    ]


def _print_new_entries(view: Any, printed: int) -> int:
    for entry in view.state.timeline[printed:]:
        ship = f"  shipment {entry.shipment_status}" if entry.shipment_status else ""
        print(f"  {datetime.now():%H:%M:%S}  {entry.production_status or entry.operation}{ship}  [{entry.source}]")
    return len(view.state.timeline)


async def run(args: argparse.Namespace) -> int:
    state: Path = args.state_dir
    state.mkdir(parents=True, exist_ok=True)
    ports = {
        "Temporal": args.temporal_port,
        "Temporal UI": args.ui_port,
        "emulator": args.emulator_port,
        "receiver": args.receiver_port,
        "codec server": args.codec_port,
        "worker metrics": args.worker_metrics_port,
        "receiver metrics": args.receiver_metrics_port,
    }
    busy = [f"{name} ({port})" for name, port in ports.items() if not _port_free(port)]
    if busy:
        print(f"ports already in use: {', '.join(busy)}. Is another stack running?", file=sys.stderr)
        return 1

    signing_key, jwks = ensure_issuer_keys(state / "issuer", ISSUER_ID)
    codec_keys = state / "codec-keys.json"
    if not codec_keys.exists():
        generate_keys_file(codec_keys)
    emulator_state = state / "emulator"
    temporal_address = f"127.0.0.1:{args.temporal_port}"
    # Mutual TLS on both D1 hops: a local CA and certificates, made once (security/pki.py).
    pki = ensure_local_pki(state / "pki", [ISSUER_ID])
    issuer_cert, notifier_cert = pki.issuer_client(ISSUER_ID), pki.notifier_client_template
    # Outbound OAuth (the D1 tenant option) is on locally, so the whole path is exercised.
    oauth_secret = state / "secrets" / "receiver-oauth-client-secret"
    if not oauth_secret.exists():
        write_secret(oauth_secret, secrets.token_urlsafe(32))
    # The CLI's static operator token (sent as a header, TEMPORAL_CODEC_AUTH); the UI needs none.
    ensure_operator_token(state / "secrets" / "codec-operators")
    emulator_url = f"https://127.0.0.1:{args.emulator_port}"
    receiver_url = f"https://127.0.0.1:{args.receiver_port}"
    codec_url = f"http://127.0.0.1:{args.codec_port}"
    common_env = {
        "TEMPORAL_ADDRESS": temporal_address,
        "D1_ISSUER_ID": ISSUER_ID,
        "D1_BANKING_URL": f"{emulator_url}/banking/v1",
        "D1_AUTHZ_URL": f"{emulator_url}/authz/v1",
        "D1_TLS_CLIENT_CERT_FILE": str(issuer_cert.cert),
        "D1_TLS_CLIENT_KEY_FILE": str(issuer_cert.key),
        "D1_TLS_CA_FILE": str(pki.ca_cert),
        "RECEIVER_TLS_CERT_FILE": str(pki.receiver_server.cert),
        "RECEIVER_TLS_KEY_FILE": str(pki.receiver_server.key),
        "RECEIVER_TLS_CLIENT_CA_FILE": str(pki.ca_cert),
        "RECEIVER_OAUTH_ENABLED": "true",
        "RECEIVER_OAUTH_CLIENT_ID": "d1-outbound",
        "RECEIVER_OAUTH_CLIENT_SECRET_FILE": str(oauth_secret),
        "EMULATOR_TLS_CERT_FILE": str(pki.emulator_server.cert),
        "EMULATOR_TLS_KEY_FILE": str(pki.emulator_server.key),
        "EMULATOR_TLS_CA_FILE": str(pki.ca_cert),
        "EMULATOR_NOTIFY_CLIENT_CERT_FILE": str(notifier_cert.cert),
        "EMULATOR_NOTIFY_CLIENT_KEY_FILE": str(notifier_cert.key),
        "EMULATOR_NOTIFY_CA_FILE": str(pki.ca_cert),
        "EMULATOR_OUTBOUND_OAUTH_TOKEN_URL": f"{receiver_url}/oauth2/token",
        "EMULATOR_OUTBOUND_OAUTH_CLIENT_ID": "d1-outbound",
        "EMULATOR_OUTBOUND_OAUTH_CLIENT_SECRET_FILE": str(oauth_secret),
        "CODEC_SERVER_PORT": str(args.codec_port),
        "CODEC_SERVER_OPERATOR_TOKENS_FILE": str(state / "secrets" / "codec-operators"),
        "CODEC_SERVER_CORS_ORIGINS": json.dumps(
            [f"http://localhost:{args.ui_port}", f"http://127.0.0.1:{args.ui_port}"]
        ),
        "D1_SIGNING_KEY_FILE": str(signing_key),
        "D1_ENCRYPTION_PUBLIC_KEY_FILE": str(emulator_state / "d1-encryption-public.jwk"),
        "RECEIVER_PORT": str(args.receiver_port),
        "EMULATOR_PORT": str(args.emulator_port),
        "EMULATOR_STATE_DIR": str(emulator_state),
        # The local sandbox: faults, scenarios and counters at /_emulator/ (emulator/README.md).
        "EMULATOR_ADMIN_API_ENABLED": "true",
        "EMULATOR_ISSUER_KEYS_FILE": str(jwks),
        "EMULATOR_RECEIVER_URL": receiver_url,
        "EMULATOR_STEP_DELAY_MS": str(args.step_delay_ms),
        "CODEC_KEYS_FILE": str(codec_keys),
        "PYTHONUNBUFFERED": "1",
    }
    sup = Supervisor(state / "logs")
    py = sys.executable
    temporal_bin = str(Path(py).parent / "temporal")
    # The launcher's own health checks present the D1 notifier certificate (any CA-signed one passes TLS).
    probe_tls = client_ssl_context(
        ca_file=pki.ca_cert, cert_file=pki.notifier_client(ISSUER_ID).cert, key_file=pki.notifier_client(ISSUER_ID).key
    )
    try:
        print(f"starting the codec server on {codec_url} (the UI decodes payloads through it, card data masked)")
        sup.start(
            "codec-server",
            [py, "-m", "security.codec_server"],
            {**common_env, "CODEC_SERVER_HOST": "127.0.0.1", "CODEC_SERVER_DEV_TRUST_LOOPBACK": "true"},
        )
        await _wait_http(f"{codec_url}/healthz", sup, "codec server")
        print(f"starting the Temporal dev server on {temporal_address} (UI on http://localhost:{args.ui_port})")
        sup.start(
            "temporal",
            dev_server_argv(
                temporal_bin,
                port=args.temporal_port,
                ui_port=args.ui_port,
                db_file=state / "temporal.db",
                codec_url=codec_url,
            ),
            {},
        )
        await _wait_http(f"http://127.0.0.1:{args.ui_port}/", sup, "Temporal UI")
        print(f"starting the D1 emulator on {emulator_url} (mutual TLS, CA {pki.ca_cert})")
        sup.start("emulator", [py, "-m", "emulator"], common_env)
        print(f"starting the notification receiver on {receiver_url} (mutual TLS, outbound OAuth on)")
        sup.start(
            "receiver",
            [py, "-m", "receiver"],
            {**common_env, "TELEMETRY_METRICS_PORT": str(args.receiver_metrics_port)},
        )
        await _wait_http(f"{emulator_url}/_emulator/health", sup, "emulator", verify=probe_tls)
        await _wait_http(f"{receiver_url}/healthz", sup, "receiver", verify=probe_tls)
        await _wait_file(emulator_state / "d1-encryption-public.jwk", sup)
        print("starting the worker")
        sup.start(
            "worker",
            [py, str(ROOT / "worker.py")],
            {**common_env, "TELEMETRY_METRICS_PORT": str(args.worker_metrics_port)},
        )
        print(
            f"metrics: http://127.0.0.1:{args.worker_metrics_port}/metrics (worker), "
            f"http://127.0.0.1:{args.receiver_metrics_port}/metrics (receiver)"
        )
        print(f"logs: {sup.log_dir}/")

        code = await _sample_order(args, sup, temporal_address)
        if args.exit_after_sample:
            return code
        print("\nThe stack stays up; press Ctrl-C to stop it.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            sup.check_alive()
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
        return 0
    finally:
        print("stopping the stack ...")
        sup.stop_all()
        print("stopped.")


async def _sample_order(args: argparse.Namespace, sup: Supervisor, temporal_address: str) -> int:
    from contracts.card_order import OrderTiming
    from settings import TemporalSettings
    from starter.api import CardOrders

    order = json.loads(args.order.read_text())
    # Date and time apart: one 14-digit run could pass the Luhn check and read as a card number.
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    order["issuerRequestId"] = f"{order['issuerRequestId']}-{stamp}"
    order["cardId"] = f"{order['cardId']}-{stamp}"
    timing = OrderTiming.model_validate(
        {"reconcile_after": "PT30S", "quiet_after_shipped": "PT5M", "close_grace": "PT2S"}
    )
    from security.codec import load_codec
    from temporal_client import connect

    client = await connect(
        TemporalSettings(address=temporal_address), codec=load_codec(args.state_dir / "codec-keys.json")
    )
    from settings import D1ClientSettings
    from starter.edge import KeyFile, OrderEdge

    edge = OrderEdge(
        program_file=D1ClientSettings().program_file,
        encryption_key=KeyFile(args.state_dir / "emulator" / "d1-encryption-public.jwk"),
    )
    orders = CardOrders(client, task_queue=TemporalSettings().task_queue, timing=timing, edge=edge)
    submitted = await orders.submit(order)
    wid = submitted.workflow_id
    print(f"\nsample order submitted: workflow {wid}")
    print(f"  Temporal UI: http://localhost:{args.ui_port}/namespaces/default/workflows/{wid}")
    print(f"  find it:     temporal workflow list --address {temporal_address} --query 'CardId=\"{order['cardId']}\"'")
    # The token goes in the environment (TEMPORAL_CODEC_AUTH), never on a command line.
    print(
        f'  decoded:     TEMPORAL_CODEC_AUTH="Bearer $(cut -d: -f2 {args.state_dir / "secrets" / "codec-operators"})" '
        f"temporal workflow show -w {wid} --address {temporal_address} "
        f"--codec-endpoint http://127.0.0.1:{args.codec_port}   (card data masked)"
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
    p.add_argument("--order", type=Path, default=ROOT / "samples" / "order.json")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    p.add_argument("--temporal-port", type=int, default=7233)
    p.add_argument("--ui-port", type=int, default=8233)
    p.add_argument("--emulator-port", type=int, default=8443)
    p.add_argument("--receiver-port", type=int, default=8080)
    p.add_argument("--codec-port", type=int, default=8234, help="codec server for the Temporal UI")
    p.add_argument("--worker-metrics-port", type=int, default=9464, help="worker's Prometheus /metrics")
    p.add_argument("--receiver-metrics-port", type=int, default=9465, help="receiver's Prometheus /metrics")
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
