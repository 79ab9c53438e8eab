"""One redaction layer for everything that leaves a process in clear: log records,
exception texts, OpenTelemetry span attributes, query results and codec-server output.

Card data (PAN, expiry, CVV/CVC, PVV, tracks, PIN) must never appear outside the JWE and
the encrypted Temporal payloads; names and addresses (PII) must not reach logs. What card
data is, by name and by shape, is defined once in d1/card_data.py (the card-data guard
refuses the same); around it:

* security/redaction/vocabulary.py: what a key or ``name=value`` name holds (card data,
  credentials, PII, safe ciphertext);
* security/redaction/text.py: card numbers, tracks, card ``key=value`` pairs and
  credentials in free text (ids of the product's own format pass unchanged);
* security/redaction/values.py: nested values (dicts, lists, models, dataclasses), span
  attributes, exception texts;
* security/redaction/logs.py: log records, redacted as the text they print;
* security/redaction/spans.py: the span exporter.
"""

from __future__ import annotations

from d1.masking import MASK
from security.redaction.logs import RedactingFilter, install_log_redaction, redact_record
from security.redaction.spans import RedactingSpanExporter
from security.redaction.text import redact_text
from security.redaction.values import redact_attributes, redact_exception, redact_mapping

__all__ = [
    "MASK",
    "RedactingFilter",
    "RedactingSpanExporter",
    "install_log_redaction",
    "redact_attributes",
    "redact_exception",
    "redact_mapping",
    "redact_record",
    "redact_text",
]
