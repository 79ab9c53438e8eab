"""Compose one-off job: the keys and certificates of the *sandbox* deployment, each service
getting only what it reads.

Run before the services (``docker compose up`` orders it); idempotent, so a restart keeps
what exists. It builds everything in a work directory that only this job mounts (the
local CAs' private keys never leave it) and copies into one output directory per secret
set — one volume per service — exactly the files that service's settings name
(:data:`SECRET_SETS`; ``--layout`` prints them). Files no longer in a set are removed, so
a volume never keeps a secret its service stopped reading. Against real D1 nothing here
runs: your PKI and secret store fill the same volumes (docs/deployment.md).

What it makes:

* the issuer's ES256 assertion-signing key and the JWKS the emulator trusts;
* a local CA with server certificates for the emulator, the receiver and the codec
  server, and the mutual-TLS client certificates of both D1 hops;
* the emulator's own JWE key pair (its private half for the emulator, the public half,
  which real D1 hands over at onboarding, for the workers);
* the payload-codec authority ring (workers and the codec server) and the receiver's own
  keys file issued from it (security/keys_tool.py), the receiver's outbound-OAuth client secret, and the operator
  token files of the codec server and the receiver from ``BOOTSTRAP_OPERATOR_TOKEN`` and
  ``BOOTSTRAP_RECEIVER_OPERATOR_TOKEN`` (required: generate them, ``openssl rand -hex 32``);
* with ``--temporal-mtls``: a second CA for Temporal, the server certificate of the
  ``temporal`` service and one client certificate per Temporal client identity
  (:data:`TEMPORAL_IDENTITIES`), for deploy/compose.temporal-mtls.yml.

Usage::

    python deploy/bootstrap.py --work /bootstrap/work --hosts emulator,receiver \\
        --out worker=/bootstrap/out/worker --out receiver=/bootstrap/out/receiver ...
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

from emulator.keys import load_or_create_encryption_keys  # noqa: E402
from security.codec import generate_keys_file, issue_keys_file  # noqa: E402
from security.pki import (  # noqa: E402
    DEFAULT_HOSTS,
    LEAF_LIFETIME,
    RENEW_BEFORE,
    CertPair,
    ensure_local_pki,
    issue_certificate,
    load_ca,
    save_pair,
)
from security.secret_files import write_secret  # noqa: E402
from settings import CodecServerSettings, D1ClientSettings  # noqa: E402
from stack.onboarding import ensure_issuer_keys  # noqa: E402

CODEC_OPERATOR = "compose-operator"
CODEC_READ_ROLE = CodecServerSettings.model_fields["oidc_read_role"].default
RECEIVER_OPERATOR = "compose-operator"
# The Temporal client identities (certificate CN) of deploy/compose.temporal-mtls.yml; the
# permissions each needs are in docs/operations.md, "Server-side authorization".
TEMPORAL_IDENTITIES = {
    "worker": "d1-card-orders-worker",
    "receiver": "d1-card-orders-receiver",
    "temporal-setup": "d1-card-orders-setup",
    "temporal-ui": "temporal-ui",
}
TEMPORAL_SERVER_HOSTS = ("temporal", "localhost", "127.0.0.1")
MIN_TOKEN_CHARS = 32
# Example values people paste (none can occur in `openssl rand -hex 32` output).
_PLACEHOLDER = re.compile(r"change-?me|example|placeholder", re.IGNORECASE)
MIN_DISTINCT_CHARS = 10
# Files anyone may read (certificates, public keys); everything else is a secret.
_PUBLIC = re.compile(r"(\.crt|public\.jwk|public-keys\.jwks)$")


class BootstrapError(RuntimeError):
    """The job cannot produce a safe deployment (e.g. a missing or weak operator token)."""


def secret_sets(issuer_id: str, *, temporal_mtls: bool) -> dict[str, dict[str, str]]:
    """Per service: destination path in its volume -> source path in the work directory.

    Each entry is a file the service's settings name (docker-compose.yml); nothing else,
    so e.g. only workers hold the assertion-signing key and only the receiver and the
    emulator the OAuth client secret. The CA keys are in no set.
    """
    ca = {"pki/ca.crt": "pki/ca.crt"}
    # The authority ring opens and seals as every role: only the processes that must open
    # everything hold it (docs/security.md, "Who holds which key").
    codec = {"codec-keys.json": "codec-keys.json"}
    oauth = {"receiver-oauth-client-secret": "receiver-oauth-client-secret"}
    sets: dict[str, dict[str, str]] = {
        "worker": {
            **ca,
            **codec,
            f"pki/issuer-client-{issuer_id}.crt": f"pki/issuer-client-{issuer_id}.crt",
            f"pki/issuer-client-{issuer_id}.key": f"pki/issuer-client-{issuer_id}.key",
            "issuer/assertion-signing-key.jwk": "issuer/assertion-signing-key.jwk",
            "d1/encryption-public.jwk": "d1-sandbox/d1-encryption-public.jwk",
        },
        "receiver": {
            **ca,
            **oauth,
            "receiver-keys.json": "receiver-keys.json",
            "pki/receiver-server.crt": "pki/receiver-server.crt",
            "pki/receiver-server.key": "pki/receiver-server.key",
            "receiver-operators": "receiver-operators",
        },
        "emulator": {
            **ca,
            **oauth,
            "pki/emulator-server.crt": "pki/emulator-server.crt",
            "pki/emulator-server.key": "pki/emulator-server.key",
            f"pki/d1-notifier-{issuer_id}.crt": f"pki/d1-notifier-{issuer_id}.crt",
            f"pki/d1-notifier-{issuer_id}.key": f"pki/d1-notifier-{issuer_id}.key",
            "issuer/public-keys.jwks": "issuer/public-keys.jwks",
        },
        # EMULATOR_STATE_DIR: the emulator's JWE key pair (emulator/keys.py file names).
        "emulator-state": {
            "d1-encryption-keyring.json": "d1-sandbox/d1-encryption-keyring.json",
            "d1-encryption-public.jwk": "d1-sandbox/d1-encryption-public.jwk",
        },
        "codec-server": {
            **codec,
            "pki/codec-server.crt": "pki/codec-server.crt",
            "pki/codec-server.key": "pki/codec-server.key",
            "codec-operators": "codec-operators",
        },
        # register-search-attributes touches no payload: no codec key at all.
        "temporal-setup": {},
    }
    if temporal_mtls:
        for name in ("worker", "receiver", "temporal-setup"):
            identity = TEMPORAL_IDENTITIES[name]
            sets[name] |= {
                "temporal/ca.crt": "temporal-pki/ca.crt",
                "temporal/client.crt": f"temporal-pki/{identity}.crt",
                "temporal/client.key": f"temporal-pki/{identity}.key",
            }
        sets["temporal"] = {
            "ca.crt": "temporal-pki/ca.crt",
            "server.crt": "temporal-pki/temporal-server.crt",
            "server.key": "temporal-pki/temporal-server.key",
        }
        sets["temporal-ui"] = {
            "ca.crt": "temporal-pki/ca.crt",
            "client.crt": f"temporal-pki/{TEMPORAL_IDENTITIES['temporal-ui']}.crt",
            "client.key": f"temporal-pki/{TEMPORAL_IDENTITIES['temporal-ui']}.key",
        }
    return sets


def checked_token(variable: str, token: str | None) -> str:
    """An operator token fit for production: generated, long, not an example value."""
    if not token:
        raise BootstrapError(f"{variable} is not set: generate one with `openssl rand -hex 32`")
    weak = len(token) < MIN_TOKEN_CHARS or len(set(token)) < MIN_DISTINCT_CHARS
    if weak or _PLACEHOLDER.search(token) or re.search(r"\s", token):
        raise BootstrapError(
            f"{variable} is not a generated token (at least {MIN_TOKEN_CHARS} random characters, "
            "no example value): generate one with `openssl rand -hex 32`"
        )
    return token


def _usable(pair: CertPair, ca_cert: x509.Certificate, hosts: Sequence[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        cert.verify_directly_issued_by(ca_cert)
    except Exception:  # missing, unparsable, or signed by another CA (InvalidSignature, ValueError, ...)
        return False
    if cert.not_valid_after_utc - RENEW_BEFORE <= dt.datetime.now(dt.UTC) or not pair.key.is_file():
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return not hosts
    names = set(san.get_values_for_type(x509.DNSName)) | {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return set(hosts) <= names


def _dual_use(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], common_name: str, hosts: Sequence[str]
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A server certificate that is also a client certificate (``serverAuth`` and
    ``clientAuth``): the Temporal server presents its internode certificate both ways,
    and to its own frontend (security/pki.py issues one usage per certificate)."""
    server, _ = issue_certificate(ca, common_name, server=True, hosts=hosts)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + LEAF_LIFETIME)
    )
    for extension in server.extensions:  # the same constraints, key usage and names…
        if not isinstance(extension.value, x509.ExtendedKeyUsage | x509.SubjectKeyIdentifier):
            builder = builder.add_extension(extension.value, critical=extension.critical)
    builder = builder.add_extension(  # …with both usages, and this key's identifier
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
    ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    return builder.sign(ca[1], hashes.SHA256()), key


def _ensure_leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    directory: Path,
    stem: str,
    common_name: str,
    *,
    server: bool,
    hosts: Sequence[str] = (),
    dual_use: bool = False,
) -> None:
    pair = CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    if _usable(pair, ca[0], hosts):
        return
    cert, key = (
        _dual_use(ca, common_name, hosts)
        if dual_use
        else issue_certificate(ca, common_name, server=server, hosts=hosts)
    )
    save_pair(pair, cert, key)


def build_work(
    work: Path, issuer_id: str, hosts: Sequence[str], tokens: Mapping[str, str], *, temporal_mtls: bool
) -> None:
    """Create whatever is missing in the work directory (only this job mounts it)."""
    ensure_issuer_keys(work / "issuer", issuer_id)
    pki = ensure_local_pki(work / "pki", [issuer_id], hosts=(*DEFAULT_HOSTS, *hosts))
    _ensure_leaf(
        load_ca(pki),
        pki.directory,
        "codec-server",
        "d1-codec-server (local)",
        server=True,
        hosts=(*DEFAULT_HOSTS, "codec-server"),
    )
    load_or_create_encryption_keys(work / "d1-sandbox")
    if not (work / "codec-keys.json").exists():
        generate_keys_file(work / "codec-keys.json")
    # Issued again on every run: after a rotation (keys_tool rotate) the receiver gets the new key.
    issue_keys_file(work / "codec-keys.json", "receiver", work / "receiver-keys.json")
    if not (work / "receiver-oauth-client-secret").exists():
        write_secret(work / "receiver-oauth-client-secret", secrets.token_urlsafe(32))
    # The CLI's token may read (the codec server's default read role), never see PII.
    write_secret(work / "codec-operators", f"{CODEC_OPERATOR}:{tokens['codec']} {CODEC_READ_ROLE}")
    write_secret(work / "receiver-operators", f"{RECEIVER_OPERATOR}:{tokens['receiver']}")
    if temporal_mtls:
        # A CA of its own: a Temporal client certificate must not pass the receiver's or the
        # emulator's TLS layer, nor a D1 certificate Temporal's (ensure_local_pki also makes
        # two server certificates there that nothing uses).
        tpki = ensure_local_pki(work / "temporal-pki", [])
        tca = load_ca(tpki)
        _ensure_leaf(
            tca, tpki.directory, "temporal-server", "temporal", server=True, hosts=TEMPORAL_SERVER_HOSTS, dual_use=True
        )
        for identity in TEMPORAL_IDENTITIES.values():
            _ensure_leaf(tca, tpki.directory, identity, identity, server=False)


def _write_if_changed(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    if path.is_file() and path.read_bytes() == data:
        os.chmod(path, mode)
        return
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)  # whatever the umask
    os.replace(tmp, path)


def distribute(work: Path, files: Mapping[str, str], out: Path) -> list[Path]:
    """Copy one secret set into ``out`` and remove every other file there.

    Secrets are 0640 (group d1, which the Temporal images get through ``group_add``),
    certificates and public keys 0644.
    """
    written = []
    for dest, source in sorted(files.items()):
        target = out / dest
        _write_if_changed(target, (work / source).read_bytes(), 0o644 if _PUBLIC.search(dest) else 0o640)
        written.append(target)
    keep = {p.resolve() for p in written}
    for path in sorted(out.rglob("*"), reverse=True):
        if path.is_file() and path.resolve() not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return written


def bootstrap(
    work: Path,
    outputs: Mapping[str, Path],
    hosts: Sequence[str],
    tokens: Mapping[str, str],
    *,
    temporal_mtls: bool = False,
) -> dict[str, list[Path]]:
    """Build the work directory and fill every requested output; returns the files per set."""
    issuer_id = D1ClientSettings().issuer_id
    sets = secret_sets(issuer_id, temporal_mtls=temporal_mtls)
    unknown = set(outputs) - set(sets)
    if unknown:
        raise BootstrapError(f"unknown secret sets {sorted(unknown)}; known: {sorted(sets)}")
    if len({out.resolve() for out in outputs.values()}) != len(outputs):
        raise BootstrapError("two secret sets would share one directory (each prunes the other's files)")
    for out in outputs.values():
        if out.resolve() == work.resolve() or work.resolve() in out.resolve().parents:
            raise BootstrapError(f"{out} is inside the work directory, which holds the CA keys")
    build_work(work, issuer_id, hosts, tokens, temporal_mtls=temporal_mtls)
    return {name: distribute(work, sets[name], out) for name, out in outputs.items()}


def _output(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=DIRECTORY, got {text!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python deploy/bootstrap.py", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="directory (a volume only this job mounts) to build in")
    parser.add_argument(
        "--out",
        type=_output,
        action="append",
        default=[],
        metavar="SET=DIR",
        help="copy a secret set into DIR (a service's volume); repeatable",
    )
    parser.add_argument("--hosts", default="", help="extra DNS names for the server certificates, comma-separated")
    parser.add_argument("--temporal-mtls", action="store_true", help="also the Temporal CA and certificates")
    parser.add_argument("--layout", action="store_true", help="print every secret set's files and exit")
    args = parser.parse_args(argv)
    issuer_id = D1ClientSettings().issuer_id
    if args.layout:
        for name, files in secret_sets(issuer_id, temporal_mtls=args.temporal_mtls).items():
            print(f"{name}: {' '.join(sorted(files))}")
        return 0
    if args.work is None or not args.out:
        parser.error("--work and at least one --out are required")
    try:
        tokens = {
            "codec": checked_token("BOOTSTRAP_OPERATOR_TOKEN", os.environ.get("BOOTSTRAP_OPERATOR_TOKEN")),
            "receiver": checked_token(
                "BOOTSTRAP_RECEIVER_OPERATOR_TOKEN", os.environ.get("BOOTSTRAP_RECEIVER_OPERATOR_TOKEN")
            ),
        }
        names = [name for name, _ in args.out]
        if len(set(names)) != len(names):
            raise BootstrapError(f"a secret set is named twice in --out: {sorted(names)}")
        hosts = [h for h in args.hosts.split(",") if h]
        written = bootstrap(args.work, dict(args.out), hosts, tokens, temporal_mtls=args.temporal_mtls)
    except BootstrapError as err:
        print(f"bootstrap: {err}", file=sys.stderr)
        return 2
    for name, paths in written.items():
        print(f"{name}: {len(paths)} file(s) ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
