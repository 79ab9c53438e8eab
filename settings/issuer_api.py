"""`ISSUER_API_*`: the issuer API."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IssuerApiSettings(BaseSettings):
    """`ISSUER_API_*`: the issuer API, the HTTP door to the edge (issuer_api/, docs/issuer-api.md).
    It encrypts card data for D1 with the `D1_*` key and program files, as the starter does."""

    model_config = SettingsConfigDict(env_prefix="ISSUER_API_", extra="ignore", use_attribute_docstrings=True)

    host: str = "127.0.0.1"
    """Address the API listens on."""
    port: int = 8445
    """Port the API listens on."""
    tls_cert_file: Path | None = None
    """The API's HTTPS server certificate. The three `ISSUER_API_TLS_*_FILE` go together, required
    unless `ISSUER_API_ALLOW_PLAINTEXT`."""
    tls_key_file: Path | None = None
    """The private key of that server certificate."""
    tls_client_ca_file: Path | None = None
    """The CA that the issuer systems' client certificates must chain to (mutual TLS)."""
    tls_client_identity: str = "urn:d1:issuer:{issuerId}"
    """The identity (SAN URI, SAN DNS or CN) a client certificate must carry to act for `{issuerId}`;
    a certificate naming several issuers may act for each of them (security/tls.py)."""
    allow_plaintext: bool = False
    """Development only: serve plain HTTP, without client certificates; logged loudly at start."""
    oauth_issuer: str | None = None
    """The OAuth 2.0 authorization server whose JWT access tokens the API accepts (`iss`); with
    `_AUDIENCE` and `_JWKS_FILE` or `_JWKS_URL`, every call needs a bearer token as well."""
    oauth_audience: str | None = None
    """The audience (`aud`) the tokens must name."""
    oauth_jwks_file: Path | None = None
    """The authorization server's public keys (JWKS), from a file."""
    oauth_jwks_url: str | None = None
    """The authorization server's public keys (JWKS), fetched (https://; http:// only on loopback)."""
    oauth_leeway_s: int = Field(default=30, ge=0, le=300)
    """Clock skew allowed on `exp`, `nbf` and `iat`."""
    oauth_issuers_claim: str = "issuer_ids"
    """A claim listing the issuerIds the token may act for; absent: the certificate decides."""
    oauth_person_claim: str = "preferred_username"
    """The claim naming the person behind a call (recorded with orders and changes), when there is one."""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest body of one order or change; larger is refused with 413 before parsing."""
    max_batch_bytes: int = Field(default=10_485_760, ge=1024)
    """Largest body of `POST card-order-batches`; larger is refused with 413."""
    max_batch_orders: int = Field(default=1000, ge=1, le=100_000)
    """The most orders one batch may hold; more is refused with 413."""
    temporal_concurrency: int = Field(default=64, ge=1)
    """Calls to Temporal in flight at once; a request waiting longer than `_SHED_AFTER_S` for one is
    answered 429 with `Retry-After` (load shedding)."""
    shed_after_s: float = Field(default=2.0, ge=0)
    """How long a request waits for a Temporal slot before it is shed."""
    request_timeout_s: float = Field(default=30.0, gt=0)
    """The longest a request may take; then 503 with `Retry-After`."""
    page_size: int = Field(default=50, ge=1, le=1000)
    """Orders per page of `GET card-orders` unless `limit` asks for another size."""
    access_log: bool = False
    """One log line per request."""
    keep_alive_s: int = Field(default=75, ge=1, le=3600)
    """How long an idle connection from an issuer system stays open. A new connection costs a
    mutual-TLS handshake inside the next call (uvicorn's own default is 5 s); only a caller that
    completed the handshake holds one."""
