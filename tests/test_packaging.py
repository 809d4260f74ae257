"""What a fresh install relies on: the console script, the shipped dataset, CI = README."""

from __future__ import annotations

import fnmatch
import re
from importlib import resources
from typing import Any

import pytest

from ppo_cli.textqa.data import builtin_dataset_path, load_dataset

from .conftest import ROOT


def pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def readme_bash_blocks(section: str) -> list[str]:
    """The ```bash blocks of one '## ' section of the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else len(text)]
    return re.findall(r"```bash\n(.*?)```", body, flags=re.DOTALL)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    blocks = readme_bash_blocks("Two commands")
    assert len(blocks) >= 2
    lines = [line for line in blocks[1].splitlines() if line.strip()]
    assert len(lines) == 1, blocks[1]
    command = lines[0]
    assert "pytest" in command
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command in ci_lines


def test_ci_installs_the_pinned_cpu_torch_first() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install -q torch==2.13.0" in ci
    assert ci.index("torch==2.13.0") < ci.index("pytest")


def test_readme_install_command_runs_ppoqa_train() -> None:
    first = readme_bash_blocks("Two commands")[0]
    assert "pip install ." in first and first.strip().endswith("ppoqa train")


def test_console_script_is_ppoqa() -> None:
    assert pyproject()["project"]["scripts"]["ppoqa"] == "ppo_cli.cli:main"
    from ppo_cli.cli import main

    assert callable(main)


def test_python_and_dev_extras() -> None:
    assert pyproject()["project"]["requires-python"] == ">=3.10"
    dev = " ".join(pyproject()["project"]["optional-dependencies"]["dev"])
    for tool in ("pytest", "ruff"):
        assert tool in dev


def test_builtin_dataset_ships_in_the_package() -> None:
    path = builtin_dataset_path()
    assert path.is_file()
    assert resources.files("ppo_cli").joinpath("datasets/builtin.yaml").is_file()
    # it lies inside the package and the package data globs include it
    relative = path.relative_to(ROOT / "ppo_cli").as_posix()
    globs = pyproject()["tool"]["setuptools"]["package-data"]["ppo_cli"]
    assert any(fnmatch.fnmatch(relative, g) for g in globs), (relative, globs)
    assert len(load_dataset(None).pairs) == 5


def test_license_is_mit() -> None:
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
