"""Connecting to Temporal with the product's data converter, which every process must share.

Where Temporal is and how to authenticate is Temporal's standard client configuration, the
one the ``temporal`` CLI reads too (docs/operations.md "Connecting to Temporal").
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Literal, cast

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec
from temporalio.envconfig import ClientConfigTLS, ClientConnectConfig, DataSource
from temporalio.service import TLSConfig

from observability.metrics import ProductMetrics
from observability.tracing import client_interceptors
from security.codec import AesGcmCodec, KeyRing, load_codec
from security.payload_refusal import ProductPayloadConverter
from security.sealing import EDGE, OPERATOR, WORKER, operator_name
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


# What a command of the CLI (or an issuer service) sends: orders (``edge``), an operator's
# actions (``operator``), or nothing it seals itself (``read``).
Purpose = Literal["edge", "operator", "read"]


class SealerRefused(RuntimeError):
    """This process's keys cannot seal what the command sends (the message says why and what to do)."""


def sealer_for(ring: KeyRing, purpose: Purpose, *, dev_operator: str | None = None) -> str:
    """Who a command seals as, decided by the credential it holds (docs/security.md, "Operators
    are named"): a file issued to ``operator:<name>`` acts as that person and cannot start
    orders; an ``edge`` file starts orders and cannot act as an operator; the authority ring
    (workers') acts as an operator only when ``CODEC_DEV_OPERATOR`` names one (development)."""
    holder = ring.seal_as
    if purpose == "read":
        return holder
    if purpose == "edge":
        if holder in (EDGE, WORKER):
            return EDGE
        raise SealerRefused(f"this keys file seals as {holder}: only the issuer edge (an edge keys file) starts orders")
    if operator_name(holder) is not None:
        return holder
    if holder == WORKER and dev_operator is not None:
        log.warning(
            "CODEC_DEV_OPERATOR=%s: operator commands are sealed as operator:%s with the AUTHORITY ring. "
            "Development only: in production each operator holds a keys file issued to them.",
            dev_operator,
            dev_operator,
        )
        return f"{OPERATOR}:{dev_operator}"
    raise SealerRefused(
        f"this keys file seals as {holder}, not as an operator: operator commands need a keys file issued to "
        "you (python -m security.keys_tool issue --as operator:<name>)"
        + (" or, on a development stack, CODEC_DEV_OPERATOR=<name>" if holder == WORKER else "")
    )


def codec_from_settings(settings: CodecSettings | None = None, *, sealer: str | None = None) -> AesGcmCodec:
    """The codec of this process. ``sealer``: ``"edge"`` or ``"operator"`` (decided by the
    credential, :func:`sealer_for`), another role the keys file holds, or None (the file's own)."""
    settings = settings or CodecSettings()
    if settings.accept_unencrypted:
        log.warning(
            "CODEC_ACCEPT_UNENCRYPTED=true: payloads not sealed by the codec are accepted, so a client without "
            "the product's keys can signal orders. Only while migrating a namespace; turn it off afterwards."
        )
    metrics = ProductMetrics.current()
    codec = load_codec(
        settings.keys_file, accept_unencrypted=settings.accept_unencrypted, on_refused=metrics.payload_refused
    )
    if sealer in ("edge", "operator"):
        sealer = sealer_for(codec.ring, cast(Purpose, sealer), dev_operator=settings.dev_operator)
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
    keyless: bool = False,
) -> Client:
    """``sealer``: who this process seals as (:func:`codec_from_settings`; a
    :class:`SealerRefused` when its keys cannot). ``keyless``: no codec at all, for a caller
    that sends and reads no payload (the search-attribute set-up job holds no key)."""
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
        data_converter=data_converter(codec if codec is not None or keyless else codec_from_settings(sealer=sealer)),
        interceptors=client_interceptors(),
        lazy=lazy,
    )
