"""Connecting to Temporal with the product's data converter, which every process must share.

Where Temporal is and how to authenticate is Temporal's standard client configuration, the
one the ``temporal`` CLI reads too (docs/operations.md "Connecting to Temporal").
"""

from __future__ import annotations

import dataclasses
import getpass
import logging
import os
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec
from temporalio.envconfig import ClientConfigTLS, ClientConnectConfig, DataSource
from temporalio.service import TLSConfig

from observability.metrics import ProductMetrics
from observability.tracing import client_interceptors
from security.codec import KeyRing, load_codec
from security.payload_refusal import ProductPayloadConverter
from security.sealing import OPERATOR, operator_name
from settings import CodecSettings, TemporalConfigError, TemporalSettings, load_temporal_profile, temporal_config_file

log = logging.getLogger(__name__)

# (profile attribute, its path variable, its TOML key, what it is)
_TLS_FILES = (
    ("client_cert", "TEMPORAL_TLS_CLIENT_CERT_PATH", "tls.client_cert_path", "client certificate"),
    ("client_private_key", "TEMPORAL_TLS_CLIENT_KEY_PATH", "tls.client_key_path", "client private key"),
    ("server_root_ca_cert", "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "tls.server_ca_cert_path", "server CA certificate"),
)


def data_converter(codec: PayloadCodec | None = None) -> DataConverter:
    if codec is None:
        return pydantic_data_converter
    # Failure messages and stack traces move into an encoded (hence encrypted) payload, so
    # no error text sits in clear in history either (security/codec.py).
    return dataclasses.replace(
        pydantic_data_converter,
        payload_converter_class=ProductPayloadConverter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def operator_sealer(ring: KeyRing) -> str:
    """Who an operator command seals as: the keys file's own operator (an operator's issued
    file), else ``operator:<name>`` with ``CODEC_OPERATOR`` or the local user's name, derived
    from the operators' master key when the keys file holds it (development)."""
    if operator_name(ring.seal_as) is not None:
        return ring.seal_as
    return f"{OPERATOR}:{os.environ.get('CODEC_OPERATOR') or getpass.getuser()}"


def codec_from_settings(settings: CodecSettings | None = None, *, sealer: str | None = None) -> PayloadCodec | None:
    """The codec of this process. ``sealer``: who it seals as, the role of the process ("edge",
    "receiver", "worker"; ``"operator"``: the operator's own identity, :func:`operator_sealer`);
    None: the keys file's ``seal_as``. The keys file must hold that role's key."""
    settings = settings or CodecSettings()
    if not settings.enabled:
        log.warning(
            "PAYLOAD CODEC DISABLED (CODEC_ENABLED=false): names, addresses and order state are stored IN CLEAR "
            "in Temporal, and any client can signal orders. Development only."
        )
        return None
    if settings.accept_unencrypted:
        log.warning(
            "CODEC_ACCEPT_UNENCRYPTED=true: payloads not sealed by the codec are accepted, so a client without "
            "the product's keys can signal orders. Only while migrating a namespace; turn it off afterwards."
        )
    metrics = ProductMetrics.current()
    codec = load_codec(
        settings.keys_file, accept_unencrypted=settings.accept_unencrypted, on_refused=metrics.payload_refused
    )
    if sealer == OPERATOR:
        sealer = operator_sealer(codec.ring)
    return codec if sealer is None or sealer == codec.sealer else codec.sealing_as(sealer)


def connect_config(settings: TemporalSettings | None = None) -> ClientConnectConfig:
    """``Client.connect``'s arguments: TLS, API key and metadata from Temporal's standard
    configuration (:func:`settings.load_temporal_profile`), the target from ``settings``. A
    missing or unreadable TLS file is a :class:`TemporalConfigError` naming the variable (or
    TOML key) that points at it."""
    settings = settings or TemporalSettings()
    profile = load_temporal_profile()
    if profile.tls is not None and profile.tls.disabled is not True:
        _check_tls_files(profile.tls)
    try:
        config = profile.to_client_connect_config()  # reads the PEM files
    except OSError as err:  # raced with _check_tls_files (file removed, permissions changed)
        raise TemporalConfigError(f"cannot read a Temporal TLS file: {err}") from None
    config["target_host"] = settings.address
    config["namespace"] = settings.namespace
    return config


def _check_tls_files(tls: ClientConfigTLS) -> None:
    for attribute, path_var, toml_key, what in _TLS_FILES:
        source: DataSource | None = getattr(tls, attribute)
        if not isinstance(source, Path):
            continue
        # A variable, when set, is what the SDK used (it overrides the profile).
        profile = os.environ.get("TEMPORAL_PROFILE") or "default"
        origin = path_var if path_var in os.environ else f"{toml_key} (profile {profile!r} of {temporal_config_file()})"
        if not source.is_file():
            raise TemporalConfigError(f"{origin}={source}: no such file (the Temporal {what})")
        if not os.access(source, os.R_OK):
            raise TemporalConfigError(f"{origin}={source}: not readable by this process (the Temporal {what})")
    if (tls.client_cert is None) != (tls.client_private_key is None):
        raise TemporalConfigError(
            "a Temporal client certificate needs its private key and the other way round: set both "
            "TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH (or tls.client_cert_path and "
            "tls.client_key_path in the profile), or neither"
        )


def describe(config: ClientConnectConfig) -> str:
    """For the start-up log line: never a secret."""
    tls = config.get("tls", False)
    mtls = isinstance(tls, TLSConfig) and tls.client_cert is not None
    api_key = bool(config.get("api_key"))
    auth = " + ".join(kind for kind, used in (("mTLS", mtls), ("API key", api_key)) if used) or "none"
    return (
        f"address {config.get('target_host')}, namespace {config.get('namespace')}, "
        f"TLS {'on' if tls is not False else 'off'}, auth {auth}"
    )


async def connect(
    settings: TemporalSettings | None = None,
    *,
    codec: PayloadCodec | None = None,
    lazy: bool = False,
    sealer: str | None = None,
) -> Client:
    """``sealer``: who this process seals as (:func:`codec_from_settings`)."""
    config = connect_config(settings)
    log.info("Temporal: %s", describe(config))
    if config.get("api_key") and config.get("tls") is False:
        log.warning("the Temporal API key is sent WITHOUT TLS (TLS disabled): anyone on the path can read it")
    if (os.environ.get("TEMPORAL_TLS_DISABLE_HOST_VERIFICATION") or "").lower() in ("true", "1"):
        # The CLI honours it; the Python SDK has no such option and verifies anyway.
        log.warning(
            "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION is ignored by the Python SDK: the server certificate is "
            "still verified (use TEMPORAL_TLS_SERVER_NAME for a certificate issued to another name)"
        )
    return await Client.connect(
        **config,
        data_converter=data_converter(codec if codec is not None else codec_from_settings(sealer=sealer)),
        interceptors=client_interceptors(),
        lazy=lazy,
    )
