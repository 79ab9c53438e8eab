"""The local CA for ``make run`` and the tests: created once, reused, renewed, right identities."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

from cryptography import x509

from security.pki import ensure_local_pki, issue_certificate, load_ca, save_pair
from security.tls import identity_from_certificate, identity_matches, issuer_ids_of
from tests.security.support import ISSUER_ID, OTHER_ISSUER_ID


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_created_once_then_reused(tmp_path: Path) -> None:
    first = ensure_local_pki(tmp_path / "pki", [ISSUER_ID])
    before = {p.name: p.read_bytes() for p in (tmp_path / "pki").iterdir()}
    second = ensure_local_pki(tmp_path / "pki", [ISSUER_ID])
    assert first == second
    assert {p.name: p.read_bytes() for p in (tmp_path / "pki").iterdir()} == before
    for key in (tmp_path / "pki").glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700


def test_new_issuer_and_replaced_ca_reissue_what_is_needed(tmp_path: Path) -> None:
    pki = ensure_local_pki(tmp_path / "pki", [ISSUER_ID])
    server = pki.emulator_server.cert.read_bytes()
    pki = ensure_local_pki(tmp_path / "pki", [ISSUER_ID, OTHER_ISSUER_ID])
    assert pki.issuer_client(OTHER_ISSUER_ID).cert.exists()
    assert pki.emulator_server.cert.read_bytes() == server
    # A certificate signed by another CA (e.g. after the CA was replaced) is re-issued.
    other = ensure_local_pki(tmp_path / "other", [ISSUER_ID])
    pki.emulator_server.cert.write_bytes(other.emulator_server.cert.read_bytes())
    pki.emulator_server.key.write_bytes(other.emulator_server.key.read_bytes())
    ensure_local_pki(tmp_path / "pki", [ISSUER_ID])
    _cert(pki.emulator_server.cert).verify_directly_issued_by(_cert(pki.ca_cert))


def test_server_certificates_are_reissued_for_new_host_names(tmp_path: Path) -> None:
    pki = ensure_local_pki(tmp_path / "pki", [ISSUER_ID])
    client = pki.issuer_client(ISSUER_ID).cert.read_bytes()
    pki = ensure_local_pki(tmp_path / "pki", [ISSUER_ID], hosts=("localhost", "127.0.0.1", "receiver", "emulator"))
    names = identity_from_certificate(_cert(pki.receiver_server.cert)).dns_names
    assert {"receiver", "emulator", "localhost"} <= set(names)
    assert pki.issuer_client(ISSUER_ID).cert.read_bytes() == client


def test_certificate_close_to_expiry_is_renewed(tmp_path: Path) -> None:
    pki = ensure_local_pki(tmp_path / "pki", [ISSUER_ID])
    old = issue_certificate(load_ca(pki), "old", server=True, hosts=["127.0.0.1"], lifetime=dt.timedelta(days=3))
    save_pair(pki.receiver_server, *old)
    ensure_local_pki(tmp_path / "pki", [ISSUER_ID])
    assert _cert(pki.receiver_server.cert).not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=300)


def test_identities() -> None:
    import tempfile

    pki = ensure_local_pki(Path(tempfile.mkdtemp()) / "pki", [ISSUER_ID])
    issuer = identity_from_certificate(_cert(pki.issuer_client(ISSUER_ID).cert))
    notifier = identity_from_certificate(_cert(pki.notifier_client(ISSUER_ID).cert))
    assert issuer_ids_of(issuer) == {ISSUER_ID}
    assert issuer_ids_of(notifier) == frozenset()
    assert identity_matches(notifier, "urn:d1:notifier:{issuerId}", ISSUER_ID)
    assert identity_matches(notifier, "urn:d1:notifier:{issuerId}", None)
    assert not identity_matches(notifier, "urn:d1:notifier:{issuerId}", OTHER_ISSUER_ID)
    assert not identity_matches(issuer, "urn:d1:notifier:{issuerId}", ISSUER_ID)
    # Thales' CN form is understood without the SAN URI.
    thales = identity_from_certificate(issue_certificate(load_ca(pki), f"TLSMA-RSA/{ISSUER_ID}/PPR", server=False)[0])
    assert issuer_ids_of(thales) == {ISSUER_ID}
    server = identity_from_certificate(_cert(pki.emulator_server.cert))
    assert "localhost" in server.dns_names and issuer_ids_of(server) == frozenset()
