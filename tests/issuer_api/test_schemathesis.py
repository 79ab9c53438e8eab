"""Schemathesis against the live API, from the API's own OpenAPI document: no server error, no
answer that contradicts the document, no card data in any answer (tests/issuer_api/schemathesis_hooks.py).
Bounded: a few examples per operation, each request with a deadline."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.conftest import ISSUER_ID
from tests.issuer_api.conftest import Api

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 8
# positive_data_acceptance expects 2xx for any body the document allows; an order's rules (the
# program's products, Luhn, dates ...) are richer than a JSON schema, so a 400 there is right.
EXCLUDED_CHECKS = "positive_data_acceptance"


async def test_schemathesis_finds_nothing(api: Api, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    # The issuer of the client's certificate: other issuers are answered 403 before anything else.
    config.write_text(f'[parameters]\n"path.issuerId" = "{ISSUER_ID}"\n')
    pair = api.pki.issuer_client(ISSUER_ID)
    st = Path(sys.executable).parent / "st"
    argv = [
        str(st),
        "--config-file",
        str(config),
        "run",
        f"{api.url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "20",
        "--tls-verify",
        str(api.pki.ca_cert),
        "--request-cert",
        str(pair.cert),
        "--request-cert-key",
        str(pair.key),
        "--header",
        f"Authorization: Bearer {api.token(exp=4_102_444_800)}",
        "--seed",
        "21",
        "--no-color",
        "--generation-database",
        "none",
        "--workers",
        "1",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.issuer_api.schemathesis_hooks", "PYTHONPATH": str(REPO_ROOT)}
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    async with asyncio.timeout(420):
        out, _ = await proc.communicate()
    report = out.decode(errors="replace")
    saved = REPO_ROOT / "test-output" / "schemathesis.txt"  # the whole report, for a failure's reader
    saved.parent.mkdir(exist_ok=True)
    saved.write_text(report)
    assert proc.returncode == 0, f"see {saved}\n" + report[-6000:]
