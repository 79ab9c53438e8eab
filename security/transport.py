"""The issuer side's transport policy: mutual TLS on every D1 hop, plain HTTP only behind an
explicit development flag, logged loudly (docs/security.md, "Mutual TLS on every D1 hop")."""

from __future__ import annotations

import logging
import ssl
from typing import Any
from urllib.parse import urlsplit

from security.tls import client_ssl_context, uvicorn_server_options
from settings import D1ClientSettings, ReceiverSettings

log = logging.getLogger("security.transport")

PLAINTEXT_BANNER = "!" * 78


class InsecureConfiguration(RuntimeError):
    pass


def loud(message: str, logger: logging.Logger = log) -> None:
    """A development flag's warning, framed so it cannot be missed in a process's log."""
    logger.warning("%s\n%s\n%s", PLAINTEXT_BANNER, message, PLAINTEXT_BANNER)


def d1_http_verify(settings: D1ClientSettings) -> ssl.SSLContext | bool:
    """httpx's ``verify=`` to reach D1 as docs/d1/auth.md §2 requires (mutual TLS)."""
    schemes = {urlsplit(settings.banking_url).scheme, urlsplit(settings.authz_url).scheme}
    if schemes == {"https"}:
        if settings.tls_client_cert_file is None or settings.tls_client_key_file is None:
            raise InsecureConfiguration(
                "D1 requires mutual TLS: set D1_TLS_CLIENT_CERT_FILE and D1_TLS_CLIENT_KEY_FILE "
                "(and D1_TLS_CA_FILE unless D1's server certificate chains to the system roots)"
            )
        return client_ssl_context(
            ca_file=settings.tls_ca_file, cert_file=settings.tls_client_cert_file, key_file=settings.tls_client_key_file
        )
    if "http" in schemes and not settings.allow_plaintext:
        raise InsecureConfiguration(
            "D1_BANKING_URL/D1_AUTHZ_URL use http:// (no TLS). D1 is mTLS-only; set "
            "D1_ALLOW_PLAINTEXT=true only for local development against the emulator"
        )
    if schemes - {"http", "https"}:
        raise InsecureConfiguration("D1 URLs must be https:// (or http:// with D1_ALLOW_PLAINTEXT=true)")
    loud(
        "DEVELOPMENT MODE (D1_ALLOW_PLAINTEXT=true): calling D1 over plain HTTP, without mutual TLS. "
        "Card data is still JWE-encrypted, but tokens travel in clear. Never use this against real D1."
    )
    return True


def receiver_server_options(settings: ReceiverSettings) -> dict[str, Any]:
    cert, key, ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    if cert is not None and key is not None and ca is not None:
        return uvicorn_server_options(cert, key, ca)
    if cert is not None or key is not None or ca is not None:
        raise InsecureConfiguration(
            "the receiver needs RECEIVER_TLS_CERT_FILE, RECEIVER_TLS_KEY_FILE and RECEIVER_TLS_CLIENT_CA_FILE together"
        )
    if not settings.allow_plaintext:
        raise InsecureConfiguration(
            "D1 calls the receiver over mutual TLS only: set RECEIVER_TLS_CERT_FILE, RECEIVER_TLS_KEY_FILE and "
            "RECEIVER_TLS_CLIENT_CA_FILE (or RECEIVER_ALLOW_PLAINTEXT=true for local development)"
        )
    loud(
        "DEVELOPMENT MODE (RECEIVER_ALLOW_PLAINTEXT=true): the receiver serves plain HTTP and does not "
        "authenticate D1 by certificate. Anyone who can reach the port can post notifications."
    )
    return {}
