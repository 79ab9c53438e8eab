"""docker-compose.yml shows Temporal's own controls (docs/security.md, "Temporal's own
controls"): the operators' UI cannot terminate, reset, cancel, signal or start an order, and the
server's authorizer and claim mapper are wired to a JWT key source and the `permissions` claim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
UI_WRITE_ACTIONS_OFF = (
    "TEMPORAL_DISABLE_WRITE_ACTIONS",  # enforced by the UI server
    "TEMPORAL_WORKFLOW_TERMINATE_DISABLED",
    "TEMPORAL_WORKFLOW_RESET_DISABLED",
    "TEMPORAL_WORKFLOW_CANCEL_DISABLED",
    "TEMPORAL_WORKFLOW_SIGNAL_DISABLED",
    "TEMPORAL_BATCH_ACTIONS_DISABLED",
    "TEMPORAL_START_WORKFLOW_DISABLED",
)


def _env(service: str) -> dict[str, Any]:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    env: dict[str, Any] = services[service]["environment"]
    return env


def test_the_operators_ui_has_every_write_action_off() -> None:
    env = _env("temporal-ui")
    assert {name: env.get(name) for name in UI_WRITE_ACTIONS_OFF} == dict.fromkeys(UI_WRITE_ACTIONS_OFF, "true")
    # It still decodes history through the codec server, with the user's token.
    assert env["TEMPORAL_CODEC_PASS_ACCESS_TOKEN"] == "true"


def test_the_server_authorizer_and_claim_mapper_are_shown_and_one_variable_away() -> None:
    env = _env("temporal")
    assert env["TEMPORAL_AUTH_AUTHORIZER"] == "${TEMPORAL_AUTHORIZER:-}"
    assert env["TEMPORAL_AUTH_CLAIM_MAPPER"] == "${TEMPORAL_CLAIM_MAPPER:-}"
    assert env["TEMPORAL_JWT_KEY_SOURCE1"] == "${TEMPORAL_JWT_KEY_SOURCE:-}"
    assert env["TEMPORAL_JWT_PERMISSIONS_CLAIM"] == "permissions"


def test_the_codec_server_requires_the_read_role() -> None:
    assert _env("codec-server")["CODEC_SERVER_OIDC_READ_ROLE"].startswith("${CODEC_SERVER_OIDC_READ_ROLE:-")
