"""Mapping the issuer's TLS client certificate to an issuerId, as D1 does (D1's TLS mutual authentication guide).

When the emulator runs with mutual TLS (``EMULATOR_TLS_CA_FILE``), every request comes
with a verified client certificate (the TLS layer refuses a connection without one) and
the certificate decides which issuer the caller is: SAN URI ``urn:d1:issuer:<issuerId>``
or Thales' CN form ``TLSMA-<alg>/<issuerId>/…`` (:func:`security.tls.issuer_ids_of`).

* token endpoint: an assertion whose ``iss`` is not the certificate's issuer is refused
  (400 ``invalid_grant``), as is a certificate that names no issuer;
* banking endpoints: a bearer token issued to another issuer than the certificate's is
  refused (403), so a stolen token is useless over another issuer's connection.

Without mutual TLS (plain HTTP sandbox) there is no certificate and nothing to map.
The helper it uses (``security.tls``) imports nothing from the issuer-side product.
"""

from __future__ import annotations

from starlette.requests import Request

from emulator.config import EmulatorSettings
from emulator.error_codes import D1Error, ErrorCode
from security.tls import issuer_ids_of, peer_identity


def _mutual_tls(settings: EmulatorSettings) -> bool:
    return settings.tls_enabled and settings.tls_ca_file is not None


def certificate_issuers(request: Request, settings: EmulatorSettings) -> frozenset[str] | None:
    """The issuerIds the caller's certificate speaks for; None when mTLS is not in use."""
    if not _mutual_tls(settings):
        return None
    identity = peer_identity(request.scope)
    if identity is None:
        # The TLS layer demands a certificate, so this means the server was started
        # without the protocol class that reports it: fail closed.
        raise D1Error(ErrorCode.AUTHORIZER_UNAUTHORIZED, reason="a TLS client certificate is required")
    return issuer_ids_of(identity)


def check_token_request(request: Request, settings: EmulatorSettings, assertion_issuer: str) -> None:
    """The assertion's ``iss`` must be the issuer of the TLS client certificate."""
    issuers = certificate_issuers(request, settings)
    if issuers is not None and assertion_issuer not in issuers:
        raise D1Error(ErrorCode.INVALID_GRANT, "assertion: iss is not the issuer of the TLS client certificate")


def check_banking_request(request: Request, settings: EmulatorSettings, token_issuer: str) -> None:
    """The bearer token must belong to the issuer of the TLS client certificate."""
    issuers = certificate_issuers(request, settings)
    if issuers is not None and token_issuer not in issuers:
        reason = "the access token was not issued to this TLS client certificate"
        raise D1Error(ErrorCode.FORBIDDEN, "Authorization", reason=reason)
