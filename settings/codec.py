"""`CODEC_*`, `CODEC_SERVER_*`: payload encryption in Temporal, and the codec server that reads it back."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from settings.paths import DEFAULT_STATE_DIR


class CodecSettings(BaseSettings):
    """`CODEC_*`: payload encryption at rest in Temporal (security/codec.py)."""

    model_config = SettingsConfigDict(env_prefix="CODEC_", extra="ignore", use_attribute_docstrings=True)

    keys_file: Path = DEFAULT_STATE_DIR / "codec-keys.json"
    """The payload-codec keys of this process (the form is in security/codec.py; `python -m
    security.keys_tool` makes them): workers and the codec server hold the authority ring, every other
    process or operator a file issued to it, which seals as that role or that operator only."""
    dev_operator: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._@-]{1,64}$")
    """Development only: with the authority ring as `CODEC_KEYS_FILE`, the operator the CLI's operator
    commands seal as (`operator:<name>`); logged loudly. Unset, the CLI refuses operator commands unless
    its keys file was issued to an operator (docs/security.md, "Operators are named")."""
    accept_unencrypted: bool = False
    """Migration only: accept payloads the codec did not seal (a namespace that ran without it). Off, they
    are refused, so nobody without the keys can start, signal or change an order."""


class CodecServerSettings(BaseSettings):
    """`CODEC_SERVER_*`: the codec server the Temporal UI and CLI call to read payloads (security/codec_server.py).

    Callers authenticate with an ``Authorization: Bearer`` header only: an OIDC access token
    the Temporal UI forwards (``OIDC_*``), or a static operator token (the CLI). At least one
    of OIDC, static tokens or the loopback development mode must be configured
    (docs/security.md, "Codec server").
    """

    model_config = SettingsConfigDict(env_prefix="CODEC_SERVER_", extra="ignore", use_attribute_docstrings=True)

    host: str = "127.0.0.1"
    """Address the codec server listens on."""
    port: int = 8234
    """Port the codec server listens on."""
    oidc_issuer: str | None = None
    """SSO: the issuer (`iss`, exact) of the access token the Temporal UI forwards
    (`TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true`)."""
    oidc_audience: str | None = None
    """SSO: the audience the access token must carry (one of `aud`)."""
    oidc_jwks_file: Path | None = None
    """SSO: the issuer's JWKS from a file (works offline)."""
    oidc_jwks_url: str | None = None
    """SSO: the issuer's JWKS from an `https://` URL (fetched, cached, fetched again for an unknown kid)."""
    oidc_roles_claim: str = "roles"
    """The claim holding the operator's roles: a list or a space-separated string; a dotted name such as
    `realm_access.roles` reaches into an object."""
    oidc_read_role: str = "card-orders-read"
    """The role that may have payloads decoded at all (in the roles claim of an SSO token, or listed after a
    static token); anyone else gets 403. The development loopback mode needs none."""
    oidc_pii_role: str = "card-orders-pii"
    """The role that may see names and addresses unmasked (card data is masked for everyone)."""
    oidc_leeway_s: int = Field(default=30, ge=0, le=300)
    """Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds."""
    operator_tokens_file: Path | None = None
    """Static operator credentials (the CLI: `TEMPORAL_CODEC_AUTH="Bearer <token>"`), one
    `name:token [role ...]` per line (the read role among them to decode); only ever accepted as an
    `Authorization` header."""
    dev_trust_loopback: bool = False
    """Development only (`make run`): the dev server's UI cannot sign anyone in, so trust browser requests
    from loopback with an allowed `Origin`. Refused unless the host is a loopback address; PII is always
    masked; announced loudly at start."""
    cors_origins: list[str] = ["http://localhost:8233", "http://127.0.0.1:8233"]
    """Origins of the Temporal UI allowed to call it from the browser (CORS), as a JSON list."""
    tls_cert_file: Path | None = None
    """HTTPS certificate of the codec server (the UI passes SSO tokens to `https://` endpoints only)."""
    tls_key_file: Path | None = None
    """The private key of that certificate."""
    mask_pii: bool = False
    """Mask names and addresses for everyone, whatever their roles (card data is always masked)."""
