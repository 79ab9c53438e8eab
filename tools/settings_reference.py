"""Writes docs/configuration.md, the reference of every setting, from the classes in settings/.

``make docs`` runs it; ``--check`` (tests/unit/test_settings_reference.py) exits 1 when out of date.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import string
import sys
import types
from datetime import timedelta
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import SecretStr, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

import settings

OUTPUT = settings.REPO_ROOT / "docs" / "configuration.md"
COMMAND = "python -m tools.settings_reference"

INTRO = Path(__file__).with_name("configuration_intro.md")  # the opening prose ($command: COMMAND)


# The order of the reference: by module (a module not listed comes last), then as written.
MODULES = ("temporal", "d1", "receiver", "issuer_api", "codec", "telemetry", "events")


def setting_classes() -> list[type[BaseSettings]]:
    found = [
        cls
        for cls in vars(settings).values()
        if inspect.isclass(cls) and issubclass(cls, BaseSettings) and cls.__module__.startswith("settings.")
    ]

    def place(cls: type[BaseSettings]) -> tuple[int, int]:
        module = cls.__module__.removeprefix("settings.")
        return (MODULES.index(module) if module in MODULES else len(MODULES), inspect.getsourcelines(cls)[1])

    return sorted(found, key=place)


def env_name(cls: type[BaseSettings], name: str) -> str:
    return (str(cls.model_config.get("env_prefix", "")) + name).upper()


def markdown(text: str) -> str:
    """A docstring as Markdown on one line: reST roles and double backquotes become code spans."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return " ".join(text.replace("``", "`").split())


def _optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(args) < len(get_args(annotation)):
            return args[0], True
    return annotation, False


def type_text(field: FieldInfo) -> str:
    annotation, optional = _optional(field.annotation)
    names = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "file path"}
    names |= {timedelta: "duration", SecretStr: "secret string"}
    if get_origin(annotation) is list:
        text = "JSON list of " + names[get_args(annotation)[0]] + "s"
    else:
        text = names[annotation]
    bounds = {type(m).__name__.lower(): m for m in field.metadata}
    if "ge" in bounds and "le" in bounds:
        text += f", {bounds['ge'].ge} to {bounds['le'].le}"
    elif "ge" in bounds:
        text += f", at least {bounds['ge'].ge}"
    for meta in field.metadata:
        pattern = getattr(meta, "pattern", None)
        if pattern:
            choices = re.fullmatch(r"\^\(([\w|]+)\)\$", pattern)
            text += (": " + " or ".join(f"`{c}`" for c in choices.group(1).split("|"))) if choices else f" `{pattern}`"
    return text + (", optional" if optional else "")


def default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "see meaning"
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, Path):
        # Defaults under the checkout are shown relative to it, so the reference does not
        # depend on where the repository was cloned.
        return f"`{value.relative_to(settings.REPO_ROOT).as_posix()}`"
    # As a variable takes it: durations in ISO 8601, lists and booleans in JSON.
    dumped = TypeAdapter(type(value)).dump_python(value, mode="json")
    return f"`{dumped if isinstance(dumped, str) else json.dumps(dumped)}`"


def section(cls: type[BaseSettings]) -> str:
    title, _, rest = inspect.cleandoc(cls.__doc__ or cls.__name__).partition("\n")
    lines = [f"## {markdown(title).rstrip('.')}", ""]
    if rest.strip():
        lines += [markdown(paragraph) + "\n" for paragraph in rest.strip().split("\n\n")]
    lines += ["| Variable | Default | Type | Meaning |", "|---|---|---|---|"]
    for name, field in cls.model_fields.items():
        cells = (f"`{env_name(cls, name)}`", default_text(field), type_text(field), markdown(field.description or ""))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def render() -> str:
    intro = string.Template(INTRO.read_text(encoding="utf-8")).substitute(command=COMMAND)
    return "\n".join([intro, *map(section, setting_classes())])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/configuration.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(settings.REPO_ROOT)} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(settings.REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
