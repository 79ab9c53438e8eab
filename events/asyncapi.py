"""The event catalogue as an AsyncAPI 3.0 document: ``python -m events.asyncapi`` writes
docs/events.asyncapi.json (tests/events/test_from_order.py fails when it is out of date)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from events.catalogue import ALL_TYPES, CATALOGUE_VERSION, DATA_MEMBERS, Event

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "events.asyncapi.json"
_HEADERS = {
    "type": "object",
    "required": ["webhook-id", "webhook-timestamp", "webhook-signature"],
    "properties": {
        "webhook-id": {"type": "string", "description": "The event id: the same on every retry."},
        "webhook-timestamp": {"type": "string", "description": "Unix seconds of the attempt."},
        "webhook-signature": {
            "type": "string",
            "description": "Space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>`, one per valid secret.",
        },
    },
}


def document() -> dict[str, Any]:
    envelope = Event.model_json_schema()
    messages: dict[str, Any] = {}
    for kind in ALL_TYPES:
        name = kind.replace(".", "_")
        data = {"type": "object", "properties": {m: {} for m in DATA_MEMBERS[kind]}, "additionalProperties": False}
        payload = {
            "allOf": [{"$ref": "#/components/schemas/Event"}],
            "properties": {"type": {"const": kind}, "data": data},
        }
        messages[name] = {"name": kind, "contentType": "application/json", "headers": _HEADERS, "payload": payload}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "D1 card orders: events",
            "version": CATALOGUE_VERSION,
            "description": "Webhooks (Standard Webhooks signatures) and the event feed; docs/events.md.",
        },
        "channels": {
            "webhook": {
                "address": "{endpointUrl}",
                "parameters": {"endpointUrl": {"description": "The endpoint's registered https URL."}},
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
            }
        },
        "operations": {
            "deliverEvent": {
                "action": "send",
                "channel": {"$ref": "#/channels/webhook"},
                "summary": "POST one event to an issuer's endpoint, at least once, in order per card.",
            }
        },
        "components": {"schemas": {"Event": envelope}, "messages": messages},
    }


def render() -> str:
    return json.dumps(document(), indent=2) + "\n"


if __name__ == "__main__":
    DOCUMENT.write_text(render())
    print(f"wrote {DOCUMENT}")
