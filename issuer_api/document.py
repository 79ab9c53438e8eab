"""Writes docs/openapi.json, the issuer API's OpenAPI document, from the app itself.

``make docs`` runs it; ``--check`` (tests/issuer_api/test_openapi_document.py) exits 1 when the
committed document differs from the generated one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, cast

from temporalio.client import Client

from issuer_api.app import create_app
from issuer_api.auth import ApiAuth
from settings import REPO_ROOT, IssuerApiSettings
from starter.api import CardOrders

OUTPUT = REPO_ROOT / "docs" / "openapi.json"


def document() -> dict[str, Any]:
    # The document needs the routes only: no Temporal connection, no credentials.
    orders = CardOrders(cast(Client, None), task_queue="docs")
    app = create_app(orders, IssuerApiSettings(allow_plaintext=True), auth=ApiAuth(require_client_cert=False))
    return app.openapi()


def rendered() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m issuer_api.document", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the committed document is out of date")
    p.add_argument("--output", type=Path, default=OUTPUT)
    args = p.parse_args(argv)
    text = rendered()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
