"""Environment maps for the stack's child processes, rendered from settings objects; no inherited
``TEMPORAL_*`` variable, only the stack's own profile (docs/development.md, "The local stack")."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from security.secret_files import write_file_atomically

TEMPORAL_PREFIX = "TEMPORAL_"


def settings_env(settings: BaseSettings, *, include: Collection[str] | None = None) -> dict[str, str]:
    """A field left at its default is left out, so the child takes the same default.
    Secrets never travel as values: a ``SecretStr`` field is refused (name its file instead)."""
    prefix = str(settings.model_config.get("env_prefix") or "")
    names = sorted(settings.model_fields_set if include is None else settings.model_fields_set & set(include))
    dumped = settings.model_dump(mode="json", include=set(names))
    env: dict[str, str] = {}
    for name in names:
        if isinstance(getattr(settings, name), SecretStr):
            raise ValueError(f"{type(settings).__name__}.{name} is a secret: give the child its file, not its value")
        value = dumped[name]
        if value is None:
            if type(settings).model_fields[name].get_default(call_default_factory=True) is not None:
                raise ValueError(f"{type(settings).__name__}.{name}=None cannot be written as a variable")
            continue
        # JSON: pydantic-settings parses complex fields (lists, dicts) so, and booleans and numbers alike.
        env[f"{prefix}{name}".upper()] = value if isinstance(value, str) else json.dumps(value)
    return env


def base_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if not k.upper().startswith(TEMPORAL_PREFIX)}


def write_temporal_profile(path: Path, *, address: str, namespace: str) -> Path:
    """Address and namespace only, so no TLS or API key can come from anywhere else."""
    text = (
        "# Written by the local stack (stack/spec.py): the only Temporal profile its processes read.\n"
        "[profile.default]\n"
        f"address = {json.dumps(address)}\n"
        f"namespace = {json.dumps(namespace)}\n"
    )
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_file_atomically(path, text.encode("utf-8"), 0o644)
    return path
