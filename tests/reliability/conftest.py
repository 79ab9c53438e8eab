from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.procstack import work_dir


@pytest.fixture
def tmp_path(request: pytest.FixtureRequest) -> Path:
    """Reliability tests keep their logs (worker, Temporal) under test-output/reliability/."""
    return work_dir(request.node.name)
