"""Every model that can carry card data or an address hides input values in its validation
errors: a payload that fails to decode on a worker prints field paths, never values."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from pydantic import BaseModel, ValidationError

import activities
import contracts
import d1
from contracts.card_order import CardOrderInput
from tests.security.support import LEAK_CVV2, LEAK_PAN

# Configuration read at start-up (the program file, D1's interface answers): no card data.
CONFIGURATION = {"d1.program", "d1.assumptions"}
# D1's 202 answer: an operationId only.
NO_CARD_DATA = {"OrderAccepted"}


def models() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for package in (d1, contracts, activities):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if info.name in CONFIGURATION:
                continue
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if inspect.isclass(obj) and issubclass(obj, BaseModel) and obj.__module__ == module.__name__:
                    found[f"{obj.__module__}.{name}"] = obj
    return [m for k, m in sorted(found.items()) if m.__name__ not in NO_CARD_DATA]


@pytest.mark.parametrize("model", models(), ids=lambda m: f"{m.__module__}.{m.__name__}")
def test_the_model_hides_input_in_errors(model: type[BaseModel]) -> None:
    assert model.model_config.get("hide_input_in_errors") is True


def test_a_workflow_input_that_fails_to_decode_names_fields_not_values() -> None:
    """The clear order of before edge encryption: refused as an unknown member, unquoted."""
    bad = {
        "ref": {"issuer_id": "TESTISS001", "card_id": "c", "issuer_request_id": "r"},
        "order": {"distributionChannel": "THALES", "cardData": {"pan": LEAK_PAN + "X", "cvv2": LEAK_CVV2 + "99"}},
    }
    with pytest.raises(ValidationError) as info:
        CardOrderInput.model_validate(bad)
    # What a worker logs (the exception text) and what the workflow reports (errors without input).
    text = str(info.value) + repr(info.value) + repr(info.value.errors(include_input=False))
    assert LEAK_PAN not in text and LEAK_CVV2 not in text
    assert "order" in text and "Extra inputs are not permitted" in text
