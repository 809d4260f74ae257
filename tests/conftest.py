"""Shared helpers: small dataset files written into a test's tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def write_dataset(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write YAML text to tmp_path/<name> and return the path."""

    def write(text: str, name: str = "data.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
