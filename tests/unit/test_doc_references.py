"""Every reference a comment, docstring or README makes exists in the repository: D1 facts
are cited as ``docs/d1/<page>.md §N`` (the section must exist), other files by their path."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".venv", ".git", ".state", "test-output", "node_modules", "__pycache__"}
D1_CITATION = re.compile(r"docs/d1/([a-z-]+)\.md(?: §(\d+)(?:[-\u2013]§?(\d+))?)?")
# A path of ours: starts with a top-level folder of the repository, ends with a file extension.
TOP = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and p.name not in SKIP_DIRS and not p.name.startswith("."))
EXTENSIONS = "py|md|json|jsonl|csv|yml|yaml|toml|conf"
FILE_REF = re.compile(
    r"(?<![\w./-])((?:" + "|".join(map(re.escape, TOP)) + r")/[\w./-]+\.(?:" + EXTENSIONS + r"))(?![\w-])"
)


def sources() -> list[Path]:
    files = [p for p in ROOT.rglob("*") if p.suffix in (".py", ".md") and not (set(p.parts) & SKIP_DIRS)]
    return [p for p in files if p.name != "citations.md"]


def test_every_d1_citation_names_an_existing_section() -> None:
    bad = []
    for path in sources():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for match in D1_CITATION.finditer(line):
                page = ROOT / "docs" / "d1" / f"{match.group(1)}.md"
                if not page.is_file():
                    bad.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)} (no such page)")
                    continue
                for section in filter(None, match.groups()[1:]):
                    if not re.search(rf"^## {section}\.", page.read_text(encoding="utf-8"), re.M):
                        bad.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)} (no section {section})")
    assert bad == [], "\n".join(bad)


def test_every_file_a_comment_or_document_names_exists() -> None:
    bad = []
    for path in sources():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for match in FILE_REF.finditer(line):
                ref = match.group(1).rstrip(".")
                # A Markdown link target may also be relative to its document (docs/ linking d1/...).
                relative = path.suffix == ".md" and (path.parent / ref).exists()
                if not ((ROOT / ref).exists() or relative):
                    bad.append(f"{path.relative_to(ROOT)}:{number}: {ref}")
    assert bad == [], "files named but missing:\n" + "\n".join(bad)
