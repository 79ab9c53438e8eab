"""The distribution channels (docs/d1/card-order.md §2): the order body is a ``oneOf``
discriminated by ``distributionChannel``, and the channels differ in two members only.

The difference is written once, in :data:`CHANNEL_RULES`; :func:`channel_models` derives
each channel's class from a body model whose two members are optional: the issuer's order
(:mod:`d1.order`) and the emulator's reading of D1's bodies (``emulator/bodies.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, create_model, field_validator
from pydantic.fields import FieldInfo

from d1.issues import not_allowed

# What each channel demands of the members that tell them apart: THALES ships the card,
# INSTANT hands it over at a personalization station (and takes no shipment), CENTRAL may
# ship or not. An "absent" member is refused with its reason below.
CHANNEL_RULES: dict[str, dict[str, Literal["required", "absent"]]] = {
    "THALES": {"shipment": "required", "persoStation": "absent"},
    "CENTRAL": {"persoStation": "absent"},
    "INSTANT": {"persoStation": "required", "shipment": "absent"},
}
_ABSENT_REASONS = {
    "persoStation": "only applies to INSTANT orders (distributionChannel INSTANT)",
    "shipment": "an INSTANT card is handed over at the personalization station and takes no shipment",
}

M = TypeVar("M", bound=BaseModel)


def _refuse(reason: str) -> Callable[[object], object]:
    def refuse(value: object) -> object:
        if value is not None:
            raise not_allowed(reason)
        return value

    return refuse


def _required(field: FieldInfo) -> tuple[Any, Any]:
    """An optional member (``X | None = None``) made required (``X``), with its constraints."""
    annotation = next(arg for arg in get_args(field.annotation) if arg is not type(None))
    return (Annotated[(annotation, *field.metadata)] if field.metadata else annotation), ...


def channel_models(base: type[M]) -> dict[str, type[M]]:
    """One class per channel, ``base`` with the channel's rule applied (e.g. ``ThalesCardOrder``).
    ``distributionChannel`` keeps ``base``'s default, if it has one."""
    default = base.model_fields["distributionChannel"].default
    models: dict[str, type[M]] = {}
    for channel, rule in CHANNEL_RULES.items():
        fields: dict[str, Any] = {"distributionChannel": (Literal[channel], channel if channel == default else ...)}
        validators: dict[str, Any] = {}
        for member, demand in rule.items():
            if demand == "required":
                fields[member] = _required(base.model_fields[member])
            else:
                validators[f"_no_{member}"] = field_validator(member, mode="before")(_refuse(_ABSENT_REASONS[member]))
        name = f"{channel.title()}{base.__name__}"
        models[channel] = create_model(name, __base__=base, __validators__=validators, **fields)
    return models


def channel_model(models: Mapping[str, type[M]], base: type[M], channel: object) -> type[M]:
    """The class for this channel; a missing or unknown channel gets ``base``, which reports it."""
    return models[channel] if isinstance(channel, str) and channel in models else base
