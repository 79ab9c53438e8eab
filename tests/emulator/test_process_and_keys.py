"""Key persistence, concurrency, logs without card data, TLS placeholders and the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import logging
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from emulator_support import ISSUER_ID, TEST_PAN, Emulator

from emulator.config import EmulatorSettings
from emulator.keys import KEYRING_FILE, LEGACY_PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, load_or_create_encryption_keys
from emulator.testing import run_emulator

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_encryption_key_is_created_once_and_reused(tmp_path: Path) -> None:
    first = load_or_create_encryption_keys(tmp_path)
    assert first.kid.startswith("d1-enc-") and len(first.kid) == len("d1-enc-") + 8
    assert stat.S_IMODE(os.stat(tmp_path / KEYRING_FILE).st_mode) == 0o600
    public = json.loads((tmp_path / PUBLIC_KEY_FILE).read_text())
    assert public == first.public_jwk and "d" not in public
    (tmp_path / PUBLIC_KEY_FILE).unlink()
    second = load_or_create_encryption_keys(tmp_path)
    assert second.kid == first.kid
    assert json.loads((tmp_path / PUBLIC_KEY_FILE).read_text()) == public


def test_a_single_key_state_directory_is_imported_as_the_active_key(tmp_path: Path) -> None:
    from jwcrypto import jwk

    old = jwk.JWK.generate(kty="EC", crv="P-256", kid="d1-enc-legacy01")
    (tmp_path / LEGACY_PRIVATE_KEY_FILE).write_text(old.export_private())
    keys = load_or_create_encryption_keys(tmp_path)
    assert keys.kid == "d1-enc-legacy01"
    assert json.loads((tmp_path / PUBLIC_KEY_FILE).read_text()) == old.export_public(as_dict=True)


async def test_concurrent_identical_orders_create_one_order(emu: Emulator) -> None:
    token = await emu.token()
    body = emu.order_body()
    answers = await asyncio.gather(*(emu.order(token, body=body) for _ in range(10)))
    assert {r.status_code for r in answers} == {202}
    assert len({r.json()["operationId"] for r in answers}) == 1
    stats = await emu.stats()
    assert stats["submissions"] == {"req-0001": 1}
    assert stats["repeats"] == {"req-0001": 9}


async def test_logs_never_carry_card_data(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = await emu.token()
    bad = emu.order_body()
    bad["encryptedData"] = emu.encrypt({"pan": "4111111111111112", "exp": "2906", "cvv2": "987"})
    assert (await emu.order(token, body=bad)).status_code == 400
    assert (await emu.order(token)).status_code == 202
    await emu.wait_status(token, lambda op: op["status"] == "SUCCESSFUL")
    for secret in (TEST_PAN, "4111111111111112", "411111", "2906", "987", "JANE SAMPLE"):
        # As a value of its own: a port, a duration or an id held "987" once (CI).
        assert not re.search(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", caplog.text), secret


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_cli_serves_health(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "EMULATOR_PORT": str(port),
        "EMULATOR_STATE_DIR": str(tmp_path / "state"),
        "EMULATOR_ISSUER_KEYS_FILE": str(tmp_path / "keys.json"),
        "EMULATOR_ADMIN_API_ENABLED": "true",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--log-level", "warning"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = dt.datetime.now() + dt.timedelta(seconds=15)
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert dt.datetime.now() < deadline, "emulator CLI did not start"
            time.sleep(0.1)
        public = httpx.get(f"http://127.0.0.1:{port}/_emulator/public-key", timeout=1).json()
        assert (tmp_path / "state" / PUBLIC_KEY_FILE).exists()
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    assert str(tmp_path / "state" / PUBLIC_KEY_FILE) in output
    assert public["kid"] in output


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    signer = issuer[1] if issuer else key
    return builder.sign(signer, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


async def test_tls_placeholders_serve_https_and_require_client_certificates(tmp_path: Path) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Emulator Test CA", ca_key, None, ca=True)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    _write(tmp_path / "ca", ca)
    _write(tmp_path / "server", _certificate("127.0.0.1", server_key, (ca, ca_key), server=True), server_key)
    _write(tmp_path / "client", _certificate(f"TLSMA-EC/{ISSUER_ID}", client_key, (ca, ca_key)), client_key)
    settings = EmulatorSettings(
        state_dir=tmp_path / "state",
        issuer_keys_file=tmp_path / "keys.json",
        tls_cert_file=tmp_path / "server.crt",
        tls_key_file=tmp_path / "server.key",
        tls_ca_file=tmp_path / "ca.crt",
    )
    async with run_emulator(settings) as base_url:
        assert base_url.startswith("https://127.0.0.1:")
        with_cert = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        with_cert.load_cert_chain(tmp_path / "client.crt", tmp_path / "client.key")
        async with httpx.AsyncClient(verify=with_cert) as client:
            assert (await client.get(f"{base_url}/_emulator/health")).status_code == 200
        without_cert = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        async with httpx.AsyncClient(verify=without_cert) as client:
            with pytest.raises(httpx.TransportError):
                response: Any = await client.get(f"{base_url}/_emulator/health")
                response.raise_for_status()
