"""A local certificate authority for ``make run`` and the tests, never for production
(docs/security.md, "Mutual TLS on every D1 hop"; docs/d1/auth.md §2).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from security.secret_files import write_file_atomically, write_secret_bytes
from security.tls import ISSUER_PLACEHOLDER, ISSUER_URI_PREFIX, NOTIFIER_URI_PREFIX

CA_LIFETIME = dt.timedelta(days=3650)
LEAF_LIFETIME = dt.timedelta(days=397)
RENEW_BEFORE = dt.timedelta(days=14)
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class LocalPki:
    directory: Path
    ca_cert: Path
    emulator_server: CertPair
    receiver_server: CertPair

    def issuer_client(self, issuer_id: str) -> CertPair:
        return _pair(self.directory, f"issuer-client-{issuer_id}")

    def notifier_client(self, issuer_id: str) -> CertPair:
        return _pair(self.directory, f"d1-notifier-{issuer_id}")

    @property
    def notifier_client_template(self) -> CertPair:
        """Paths with ``{issuerId}`` left in: the emulator picks the certificate per tenant."""
        return _pair(self.directory, f"d1-notifier-{ISSUER_PLACEHOLDER}")


def _pair(directory: Path, stem: str) -> CertPair:
    return CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")


def _load(pair: CertPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    return cert, key


def _fresh(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - RENEW_BEFORE > dt.datetime.now(dt.UTC)


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # InvalidSignature, or ValueError/TypeError for another issuer or key type
        return False
    return True


def _covers(cert: x509.Certificate, hosts: Sequence[str]) -> bool:
    # Every host asked for; a deployment may add some.
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return all(name in san for name in _san_entries(hosts, ()))


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    unused = ("content_commitment", "key_encipherment", "data_encipherment", "encipher_only", "decipher_only")
    return x509.KeyUsage(
        digital_signature=True, key_agreement=not ca, key_cert_sign=ca, crl_sign=ca, **dict.fromkeys(unused, False)
    )


def _signed(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey],
    *,
    start: dt.datetime,
    lifetime: dt.timedelta,
    extensions: Sequence[x509.ExtensionType] = (),
) -> x509.Certificate:
    # Self-signed, it is a CA.
    issuer_name, issuer_key = issuer
    ca = issuer_key is key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + lifetime)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(_key_usage(ca=ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def save_pair(pair: CertPair, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> CertPair:
    # The key 0600, even over an older, wider key file.
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_secret_bytes(pair.key, key_pem)
    write_file_atomically(pair.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return pair


def _start() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # tolerate a peer's clock skew


def _new_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "d1-card-orders local development"),
            x509.NameAttribute(NameOID.COMMON_NAME, "d1-card-orders local CA (not for production)"),
        ]
    )
    return _signed(name, key, (name, key), start=_start(), lifetime=CA_LIFETIME), key


def _san_entries(hosts: Sequence[str], uris: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    names.extend(x509.UniformResourceIdentifier(uri) for uri in uris)
    return names


def issue_certificate(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    common_name: str,
    *,
    server: bool,
    hosts: Sequence[str] = (),
    uris: Sequence[str] = (),
    lifetime: dt.timedelta = LEAF_LIFETIME,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    extensions: list[x509.ExtensionType] = [x509.ExtendedKeyUsage([usage])]
    if san := _san_entries(hosts, uris):
        extensions.append(x509.SubjectAlternativeName(san))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return _signed(
        subject, key, (ca_cert.subject, ca_key), start=_start(), lifetime=lifetime, extensions=extensions
    ), key


def ensure_local_pki(directory: Path, issuer_ids: Iterable[str], *, hosts: Sequence[str] = DEFAULT_HOSTS) -> LocalPki:
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ca_pair = _pair(directory, "ca")
    ca = _load(ca_pair)
    if ca is None or not _fresh(ca[0]):
        ca = _new_ca()
        save_pair(ca_pair, *ca)

    pki = LocalPki(
        directory=directory,
        ca_cert=ca_pair.cert,
        emulator_server=_pair(directory, "emulator-server"),
        receiver_server=_pair(directory, "receiver-server"),
    )
    ensure_leaf(ca, pki.emulator_server, "d1-emulator (local)", hosts=hosts)
    ensure_leaf(ca, pki.receiver_server, "d1-notification-receiver (local)", hosts=hosts)
    for id_ in issuer_ids:
        ensure_leaf(ca, pki.issuer_client(id_), f"TLSMA-EC/{id_}/LOC", uris=[ISSUER_URI_PREFIX + id_])
        ensure_leaf(ca, pki.notifier_client(id_), f"D1-NOTIFIER/{id_}", uris=[NOTIFIER_URI_PREFIX + id_])
    return pki


def load_ca(pki: LocalPki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA's certificate and key (tests issue odd certificates with it)."""
    loaded = _load(CertPair(pki.ca_cert, pki.directory / "ca.key"))
    if loaded is None:
        raise RuntimeError(f"no usable CA under {pki.directory}")
    return loaded


@dataclass(frozen=True)
class TemporalPki:
    """Local certificates for Temporal behind a mutual-TLS gateway (tests/support/temporal_pki.py);
    a real cluster or Temporal Cloud gets its certificates from the deployment's PKI."""

    directory: Path
    ca_cert: Path
    gateway_server: CertPair

    def client(self, name: str) -> CertPair:
        return _pair(self.directory, f"temporal-client-{name}")


def ensure_leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    pair: CertPair,
    common_name: str,
    *,
    hosts: Sequence[str] | None = None,
    uris: Sequence[str] = (),
) -> None:
    """Keep a usable certificate (fresh, from this CA, naming every host); else issue a new one.
    ``hosts`` None: a client certificate."""
    existing = _load(pair)
    if (
        existing is not None
        and _fresh(existing[0])
        and _issued_by(existing[0], ca[0])
        and (hosts is None or _covers(existing[0], hosts))
    ):
        return
    save_pair(pair, *issue_certificate(ca, common_name, server=hosts is not None, hosts=hosts or (), uris=uris))
