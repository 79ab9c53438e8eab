"""Mutual-TLS glue: uvicorn verifies a client certificate but does not tell the app which one,
so the protocol classes here put it, parsed, in each request's ASGI TLS extension; the
certificate identities are in docs/security.md, "Mutual TLS on every D1 hop". Imports nothing
of the issuer-side product, so the emulator may use it too.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ISSUER_URI_PREFIX = "urn:d1:issuer:"
NOTIFIER_URI_PREFIX = "urn:d1:notifier:"
ISSUER_PLACEHOLDER = "{issuerId}"
# Thales' client CN: "TLSMA-RSA/<issuerId>/<env>" per docs/d1/auth.md §2 (exact format not published).
_TLSMA_CN = re.compile(r"^TLSMA-[A-Za-z0-9]+/(?P<issuer>[^/]{10})(?:/.*)?$")
ISSUER_ID_LENGTH = 10
TLS_EXTENSION = "tls"


@dataclass(frozen=True)
class CertIdentity:
    common_name: str | None = None
    uris: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    subject: str = ""

    def names(self) -> tuple[str, ...]:
        """SAN first: RFC 6125 prefers SAN over CN."""
        cn = (self.common_name,) if self.common_name else ()
        return (*self.uris, *self.dns_names, *cn)


def identity_from_certificate(cert: x509.Certificate) -> CertIdentity:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = cns[0].value if cns else None
    uris: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
        dns = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        pass
    return CertIdentity(
        common_name=cn if isinstance(cn, str) else None, uris=uris, dns_names=dns, subject=cert.subject.rfc4514_string()
    )


def issuer_ids_of(identity: CertIdentity) -> frozenset[str]:
    """The issuerIds an issuer → D1 client certificate speaks for (D1 side of docs/d1/auth.md §2):
    SAN URIs ``urn:d1:issuer:<id>`` win; without any, the Thales CN form is read."""
    from_uris = {
        uri[len(ISSUER_URI_PREFIX) :]
        for uri in identity.uris
        if uri.startswith(ISSUER_URI_PREFIX) and len(uri) - len(ISSUER_URI_PREFIX) == ISSUER_ID_LENGTH
    }
    if from_uris:
        return frozenset(from_uris)
    match = _TLSMA_CN.match(identity.common_name or "")
    return frozenset({match["issuer"]}) if match else frozenset()


def issuers_named(identity: CertIdentity, template: str) -> frozenset[str]:
    """The issuerIds a certificate speaks for under an identity template with ``{issuerId}``
    (every placeholder filled in with the same issuerId)."""
    head, *rest = template.split(ISSUER_PLACEHOLDER)
    if not rest:
        return frozenset()
    pattern = re.escape(head) + f"(?P<issuer>[^/]{{{ISSUER_ID_LENGTH}}})"
    pattern += "".join(re.escape(part) + "(?P=issuer)" for part in rest[:-1]) + re.escape(rest[-1])
    compiled = re.compile(pattern)
    return frozenset(m["issuer"] for name in identity.names() if (m := compiled.fullmatch(name)))


def identity_matches(identity: CertIdentity, template: str, issuer_id: str | None) -> bool:
    """True when the certificate carries ``template`` with ``{issuerId}`` filled in (``issuer_id=None``:
    any issuerId); a template without ``{issuerId}`` pins one identity for every issuer."""
    if issuer_id is not None or ISSUER_PLACEHOLDER not in template:
        return template.replace(ISSUER_PLACEHOLDER, issuer_id or "") in identity.names()
    return bool(issuers_named(identity, template))


def _tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    identity = identity_from_certificate(x509.load_der_x509_certificate(der)) if der else None
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": identity.subject if identity else None,
        "client_cert_error": None,
        "tls_version": ssl_object.version(),
        "cipher_suite": None,
        "identity": identity,
    }


class _PeerCertOnConnect:
    """Mixed into a uvicorn HTTP protocol. One instance serves one connection, so wrapping
    ``self.app`` per connection is safe."""

    app: Any

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        extension, app = _tls_extension(transport), self.app
        if extension is None:
            return

        async def with_tls(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope.get("type") in ("http", "websocket"):
                scope = {**scope, "extensions": {**(scope.get("extensions") or {}), TLS_EXTENSION: extension}}
            await app(scope, receive, send)

        self.app = with_tls


class PeerCertH11Protocol(_PeerCertOnConnect, H11Protocol):  # type: ignore[misc]
    pass


class PeerCertHttpToolsProtocol(_PeerCertOnConnect, HttpToolsProtocol):  # type: ignore[misc]
    """httptools: a fraction of h11's CPU per request, the receiver's fast path."""


def peer_identity(scope: Mapping[str, Any]) -> CertIdentity | None:
    tls = (scope.get("extensions") or {}).get(TLS_EXTENSION)
    if not isinstance(tls, dict):
        return None
    identity = tls.get("identity")
    return identity if isinstance(identity, CertIdentity) else None


def _hardened(_config: Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    context = default()
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # D1: TLS 1.2 or 1.3
    return context


def uvicorn_server_options(cert_file: Path, key_file: Path, client_ca_file: Path) -> dict[str, Any]:
    return {
        "ssl_certfile": str(cert_file),
        "ssl_keyfile": str(key_file),
        "ssl_context_factory": _hardened,
        "http": PeerCertHttpToolsProtocol,
        "ssl_ca_certs": str(client_ca_file),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }


def client_ssl_context(
    *, ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if (cert_file is None) != (key_file is None):
        raise ValueError("a client certificate needs both its certificate file and its key file")
    if cert_file is not None and key_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file))
    return context
