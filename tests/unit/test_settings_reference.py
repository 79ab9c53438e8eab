"""docs/configuration.md is generated from settings/ and must match it: a setting added,
removed or re-described without regenerating the reference fails here."""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings

from tools import settings_reference as reference

REGENERATE = f"docs/configuration.md is out of date: regenerate it with `{reference.COMMAND}` (or `make docs`)"


def test_the_committed_reference_is_the_generated_one() -> None:
    committed = reference.OUTPUT.read_text(encoding="utf-8")
    assert committed == reference.render(), REGENERATE


def test_every_setting_is_described() -> None:
    missing = [
        reference.env_name(cls, name)
        for cls in reference.setting_classes()
        for name, field in cls.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert missing == [], "settings without a description (a docstring under the field): " + ", ".join(missing)


BOOLEANS = [
    (cls, name)
    for cls in reference.setting_classes()
    for name, field in cls.model_fields.items()
    if field.annotation is bool
]


@pytest.mark.parametrize(("cls", "name"), BOOLEANS, ids=[reference.env_name(c, n) for c, n in BOOLEANS])
def test_the_documented_variable_is_the_one_the_process_reads(
    monkeypatch: pytest.MonkeyPatch, cls: type[BaseSettings], name: str
) -> None:
    variable = reference.env_name(cls, name)
    assert f"| `{variable}` |" in reference.render()
    default = cls.model_fields[name].default
    monkeypatch.setenv(variable, str(not default).lower())
    assert getattr(cls(), name) is (not default)
