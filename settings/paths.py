"""Where the repository and the local state directory are: the defaults of the file settings."""

from __future__ import annotations

from pathlib import Path

# settings/ is one level below the repository root.
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STATE_DIR = REPO_ROOT / ".state"
