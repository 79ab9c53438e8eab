"""The import table of docs/architecture.md holds for every product module.

Imports flow one way (d1 ← contracts ← activities ← workflows ← worker); the receiver and
the starter talk to workflows through contracts/ only. Parsing the table from the
document keeps the documented rule and the enforced rule the same.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
PRODUCT = {
    "d1",
    "contracts",
    "activities",
    "workflows",
    "events",
    "receiver",
    "starter",
    "issuer_api",
    "emulator",
    "security",
    "observability",
    "stack",
    "bench",
    "tools",
    "settings",
    "temporal_client",
    "worker",
    "tests",
}


def rules() -> dict[str, list[str]]:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- import-rules:start -->", 1)[1].split("<!-- import-rules:end -->", 1)[0]
    table: dict[str, list[str]] = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        table[cells[0].strip("`")] = re.findall(r"`([^`]+)`", cells[1])
    return table


def modules_of(package: str) -> list[Path]:
    single = ROOT / f"{package}.py"
    if single.is_file():
        return [single]
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from pkg import module" imports pkg.module (and pkg's __init__, which holds no code).
            folder = ROOT / node.module.replace(".", "/")
            submodules = {f"{node.module}.{a.name}" for a in node.names if (folder / f"{a.name}.py").is_file()}
            out |= submodules if len(submodules) == len(node.names) else {node.module} | submodules
    return {name for name in out if name.split(".")[0] in PRODUCT}


def allowed(name: str, allowances: list[str]) -> bool:
    for allowance in allowances:
        if allowance.endswith("."):
            if name == allowance[:-1] or name.startswith(allowance):
                return True
        elif name == allowance or (name.startswith(allowance + ".") and (ROOT / allowance.replace(".", "/")).is_dir()):
            return True
    return False


def test_the_table_covers_every_product_package() -> None:
    assert set(rules()) == PRODUCT - {"tests"}


@pytest.mark.parametrize("package", sorted(PRODUCT - {"tests"}))
def test_imports_follow_the_table(package: str) -> None:
    allowances = rules()[package]
    problems = []
    for path in modules_of(package):
        for name in sorted(imported(path)):
            if not allowed(name, allowances):
                problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert problems == [], f"{package} may import only {allowances} (docs/architecture.md):\n" + "\n".join(problems)


def test_the_workflows_never_import_io_libraries() -> None:
    for path in modules_of("workflows"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        bad = {n for n in names if n.split(".")[0] in ("httpx", "jwcrypto", "receiver", "starter")}
        assert not bad, f"{path.name} imports {bad}"


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {m.split(".")[0] for m in json.loads(out)} | set(json.loads(out))


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        ("import receiver.app", {"activities", "jwcrypto", "workflows"}),
        ("import receiver.__main__", {"activities", "jwcrypto", "workflows"}),
        ("import starter.api", {"activities", "workflows"}),
        ("import starter.cli", {"activities", "workflows"}),
        ("import workflows.card_order", {"httpx", "jwcrypto", "receiver", "starter", "activities.card_order"}),
    ],
)
def test_what_a_process_loads(statement: str, forbidden: set[str]) -> None:
    loaded = _loaded_after(statement)
    assert not (loaded & forbidden), f"{statement} loads {sorted(loaded & forbidden)}"
