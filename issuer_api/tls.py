"""The API's transport: mutual TLS, with the client certificate asked for but checked by the app
(issuer_api/auth.py), so that a call without one is answered 401 rather than cut in the
handshake; a certificate that is presented must still chain to the configured CA."""

from __future__ import annotations

import logging
import ssl
from typing import Any

from security.tls import uvicorn_server_options
from security.transport import InsecureConfiguration, loud
from settings import IssuerApiSettings

log = logging.getLogger("issuer_api")


def server_options(settings: IssuerApiSettings) -> dict[str, Any]:
    cert, key, ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    if cert is not None and key is not None and ca is not None:
        return {**uvicorn_server_options(cert, key, ca), "ssl_cert_reqs": ssl.CERT_OPTIONAL}
    if cert is not None or key is not None or ca is not None:
        raise InsecureConfiguration(
            "the issuer API needs ISSUER_API_TLS_CERT_FILE, ISSUER_API_TLS_KEY_FILE and "
            "ISSUER_API_TLS_CLIENT_CA_FILE together"
        )
    if not settings.allow_plaintext:
        raise InsecureConfiguration(
            "the issuer API receives card data: it serves mutual TLS only (set ISSUER_API_TLS_CERT_FILE, "
            "ISSUER_API_TLS_KEY_FILE, ISSUER_API_TLS_CLIENT_CA_FILE, or ISSUER_API_ALLOW_PLAINTEXT=true for "
            "local development)"
        )
    loud(
        "DEVELOPMENT MODE (ISSUER_API_ALLOW_PLAINTEXT=true): the issuer API serves plain HTTP and card data "
        "crosses the network in clear. Never use this outside a development machine.",
        log,
    )
    return {}
