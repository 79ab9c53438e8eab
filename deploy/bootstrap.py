"""Compose one-off job: the keys and certificates a *demonstration* deployment needs.

Run once before the services (``docker compose up`` orders it); idempotent, so a restart
keeps what exists. It writes into the ``secrets`` volume what, in production, comes from
your secret store and PKI instead (README "Deployment"):

* the issuer's ES256 assertion-signing key and the JWKS the emulator trusts
  (with real D1: the key you onboarded with Thales);
* a local CA with server certificates for ``emulator`` and ``receiver`` and the mutual-TLS
  client certificates of both D1 hops (with real D1: Thales' and your PKI);
* the payload-codec keys file and the codec server's operator token (the one the UI's
  codec endpoint carries, from ``BOOTSTRAP_OPERATOR_TOKEN``);
* the client secret of the receiver's outbound OAuth endpoint.

Usage: ``python deploy/bootstrap.py --secrets /secrets --hosts emulator,receiver``
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from security.codec import generate_keys_file  # noqa: E402
from security.pki import DEFAULT_HOSTS, ensure_local_pki  # noqa: E402
from security.secret_files import write_secret  # noqa: E402
from settings import D1ClientSettings  # noqa: E402
from stack.onboarding import ensure_issuer_keys  # noqa: E402

OPERATOR_NAME = "compose-operator"


def bootstrap(secrets_dir: Path, hosts: list[str], operator_token: str | None) -> list[Path]:
    """Create whatever is missing under ``secrets_dir``; returns the files that exist after."""
    issuer_id = D1ClientSettings().issuer_id
    signing_key, jwks = ensure_issuer_keys(secrets_dir / "issuer", issuer_id)
    pki = ensure_local_pki(secrets_dir / "pki", [issuer_id], hosts=(*DEFAULT_HOSTS, *hosts))
    codec_keys = secrets_dir / "codec-keys.json"
    if not codec_keys.exists():
        generate_keys_file(codec_keys)
    oauth_secret = secrets_dir / "receiver-oauth-client-secret"
    if not oauth_secret.exists():
        write_secret(oauth_secret, secrets.token_urlsafe(32))
    operators = secrets_dir / "codec-operators"
    if operator_token:
        write_secret(operators, f"{OPERATOR_NAME}:{operator_token}")
    elif not operators.exists():
        write_secret(operators, f"{OPERATOR_NAME}:{secrets.token_urlsafe(24)}")
    return [signing_key, jwks, pki.ca_cert, codec_keys, oauth_secret, operators]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python deploy/bootstrap.py", description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=Path, required=True, help="directory (a volume) to write into")
    parser.add_argument("--hosts", default="", help="extra DNS names for the server certificates, comma-separated")
    args = parser.parse_args(argv)
    hosts = [h for h in args.hosts.split(",") if h]
    for path in bootstrap(args.secrets, hosts, os.environ.get("BOOTSTRAP_OPERATOR_TOKEN") or None):
        print(f"ready: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
