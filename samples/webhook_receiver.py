"""A bank's webhook receiver, as small as it gets: verify with the `standardwebhooks` library, print.

This is the bank's side, not the product's: it uses nothing of this repository, so it is
what a card management system would write in any language with a stock library
(docs/events.md, "Receiving webhooks"). `make run` starts it and registers it as an
endpoint of the sample issuer; the secret it verifies with is read from ``--secret-file``
(one `whsec_...` per line: during a rotation, both) at every request.

    python samples/webhook_receiver.py --port 8090 --secret-file .state/webhooks/secret
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def _secrets(secret_file: Path) -> list[str]:
    # A few bytes, read at every request so that a rotation needs no restart.
    return [line.strip() for line in secret_file.read_text().splitlines() if line.strip()]


def create_app(secret_file: Path) -> Starlette:
    seen: set[str] = set()

    async def receive(request: Request) -> Response:
        body = await request.body()
        event = None
        for secret in _secrets(secret_file):
            try:
                event = Webhook(secret).verify(body, dict(request.headers))
                break
            except WebhookVerificationError:
                continue
        if event is None:
            print(f"{datetime.now():%H:%M:%S}  REFUSED: signature does not verify", flush=True)
            return Response(status_code=400)
        again = " (again: already processed, dropped)" if event["id"] in seen else ""
        seen.add(event["id"])
        data = event.get("data", {})
        detail = data.get("outcome") or data.get("shipment_status") or data.get("production_status") or ""
        print(
            f"{datetime.now():%H:%M:%S}  #{event.get('sequence')} {event['type']:<34} card {event['card_id']} "
            f"{detail}{again}",
            flush=True,
        )
        if not again and data:
            print(f"           {json.dumps(data)}", flush=True)
        return Response(status_code=204)

    return Starlette(routes=[Route("/", receive, methods=["POST"])])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--secret-file", type=Path, required=True)
    args = p.parse_args()
    print(f"webhook receiver on http://{args.host}:{args.port}/ (secrets from {args.secret_file})", flush=True)
    uvicorn.run(create_app(args.secret_file), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
