"""Connecting to Temporal with the product's data converter.

Every process (worker, receiver, starter, tests, replayer) must use the same converter,
so it is built here once: pydantic payloads sealed by the AES-GCM payload codec.
"""

from __future__ import annotations

import dataclasses
import logging

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from observability.metrics import ProductMetrics
from observability.tracing import client_interceptors
from security.codec import load_codec
from security.payload_refusal import ProductPayloadConverter
from settings import CodecSettings, TemporalSettings

log = logging.getLogger(__name__)


def data_converter(codec: PayloadCodec | None = None) -> DataConverter:
    """Pydantic payloads (plus the codec's refused-payload marker), sealed by ``codec``."""
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


def codec_from_settings(settings: CodecSettings | None = None) -> PayloadCodec | None:
    settings = settings or CodecSettings()
    if not settings.enabled:
        log.warning(
            "PAYLOAD CODEC DISABLED (CODEC_ENABLED=false): card data is stored IN CLEAR in Temporal. "
            "Development only."
        )
        return None
    if settings.accept_unencrypted:
        log.warning(
            "CODEC_ACCEPT_UNENCRYPTED=true: payloads not sealed by the codec are accepted, so a client without "
            "the product's keys can signal orders. Only while migrating a namespace; turn it off afterwards."
        )
    metrics = ProductMetrics.current()
    return load_codec(settings.keys_file, accept_unencrypted=settings.accept_unencrypted,
                      on_refused=metrics.payload_refused)


async def connect(
    settings: TemporalSettings | None = None, *, codec: PayloadCodec | None = None, lazy: bool = False
) -> Client:
    settings = settings or TemporalSettings()
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        data_converter=data_converter(codec if codec is not None else codec_from_settings()),
        # Tracing interceptor on the client only (workers built from it inherit it).
        interceptors=client_interceptors(),
        lazy=lazy,
    )
