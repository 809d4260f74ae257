"""The documentation runs: its marked shell examples, its generated pages, its site build.

Convention (docs/contributing.md): every ```console block in README.md and docs/*.md is
preceded by a marker line, either

    <!-- test: run -->             the block's `$ ` commands run in order, each must exit 0
    <!-- test: not run: WHY -->    shown only (too slow as printed, needs an extra, ...)

Lines of a block that do not start with `$ ` are sample output and are not compared; a command
line ending in a backslash continues on the next line. The commands of one file share one
temporary folder (so `ppoqa train` then `ppoqa ask` work), which holds links to the
repository's examples/ and tests/ (for `--env tests.user_envs:...`).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT

DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- test: (run|not run: .+) -->$")
FENCE = re.compile(r"^(`{3,})(\w*)")


def console_blocks(path: Path) -> list[tuple[int, str | None, list[str]]]:
    """(line number, marker or None, lines) of every ```console block of one file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i].strip())
        if not fence:
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and lines[i].strip() != fence.group(1):
            body.append(lines[i])
            i += 1
        i += 1
        if fence.group(2) == "console":
            before = lines[start - 1].strip() if start else ""
            marker = MARKER.match(before)
            blocks.append((start + 1, marker.group(1) if marker else None, body))
    return blocks


def commands(body: list[str]) -> list[str]:
    """The `$ ` commands of a block, continuation lines joined."""
    out: list[str] = []
    pending: str | None = None
    for line in body:
        if pending is not None:
            pending += "\n" + line
            if not line.rstrip().endswith("\\"):
                out.append(pending)
                pending = None
        elif line.startswith("$ "):
            if line.rstrip().endswith("\\"):
                pending = line[2:]
            else:
                out.append(line[2:])
    assert pending is None, f"a command ends in a backslash with nothing after it: {pending}"
    return out


def runnable(path: Path) -> list[str]:
    return [cmd for _, m, body in console_blocks(path) if m == "run" for cmd in commands(body)]


def test_every_console_block_is_marked() -> None:
    unmarked = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in DOC_FILES
        for line, marker, _ in console_blocks(path)
        if marker is None
    ]
    assert not unmarked, (
        "console blocks without '<!-- test: run -->' or '<!-- test: not run: WHY -->' "
        f"on the line before: {unmarked}"
    )


def test_the_tour_is_runnable() -> None:
    tour = runnable(ROOT / "README.md")
    assert any(cmd.startswith("ppoqa train") for cmd in tour)
    assert any(cmd.startswith("ppoqa ask") for cmd in tour)


RUNNABLE_FILES = [p for p in DOC_FILES if runnable(p)]


def run_page(path: Path, folder: Path) -> list[tuple[str, int, str]]:
    """Run one page's commands in order in `folder`; (command, exit code, stderr) of each,
    stopping at the first that fails."""
    folder.mkdir()
    for name in ("examples", "tests"):
        (folder / name).symlink_to(ROOT / name, target_is_directory=True)
    env = dict(os.environ)
    # the ppoqa and python of the environment running the tests, as a user's shell finds them
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["COLUMNS"] = "100"
    env.pop("PPOQA_DEBUG", None)
    results = []
    for cmd in runnable(path):
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", cmd],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        results.append((cmd, proc.returncode, proc.stderr))
        if proc.returncode != 0:
            break
    return results


@pytest.fixture(scope="module")
def page_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Any]:
    """Every runnable page at once, two pages at a time: each command is one single-threaded
    process (mostly Python start-up and imports), so two cores run two pages in parallel."""
    base = tmp_path_factory.mktemp("docs")
    workers = max(1, min(2, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        longest_first = sorted(RUNNABLE_FILES, key=lambda p: -len(runnable(p)))
        futures = {
            path: pool.submit(run_page, path, base / f"page{i}")
            for i, path in enumerate(longest_first)
        }
        return {path: future.result() for path, future in futures.items()}


@pytest.mark.parametrize("path", RUNNABLE_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_runnable_examples(path: Path, page_runs: dict[Path, Any]) -> None:
    results = page_runs[path]
    assert len(results) == len(runnable(path)) or results[-1][1] != 0
    for cmd, code, stderr in results:
        assert code == 0, f"{path.name}: `{cmd}` exited {code}\n{stderr[-2000:]}"


def test_benchmarks_page_is_generated_from_the_results() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import make_results_page
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert page == make_results_page.render(), (
        "docs/benchmarks.md is stale: run python benchmarks/make_results_page.py"
    )


def test_benchmarks_page_tolerates_any_result_file(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import make_results_page
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    (tmp_path / "qa_seeds_new.json").write_text(
        '{"benchmark": "qa_seeds", "command": "python benchmarks/qa_seeds.py --seeds 2", '
        '"solved": 2, "num_seeds": 2, "config": {"lr": 1}, "seeds": [{"seed": 0}]}'
    )
    (tmp_path / "mystery_thing.json").write_text("[1, 2, 3]")
    (tmp_path / "broken_file.json").write_text("{not json")
    (tmp_path / "own_data_rows.jsonl").write_text(
        '{"v": "a", "seed": 0, "acc": 0.5}\n{"v": "a", "seed": 1, "acc": 1.0}\n\n'
        '{"v": "b|c", "seed": 0, "acc": 0.25}\n'
    )
    (tmp_path / "empty_rows.jsonl").write_text("")
    page = make_results_page.render(tmp_path)
    assert "## qa_seeds" in page and "python benchmarks/qa_seeds.py --seeds 2" in page
    assert "| `qa_seeds_new.json` | 2 | 2 |" in page  # scalars kept; config and seeds left out
    assert "unreadable" in page and "## broken" in page  # one bad file does not hide the rest
    assert "| `own_data_rows.jsonl` | a | 2 | 0-1 | 0.75 |" in page  # grouped, median
    assert "b\\|c" in page  # a pipe in a value does not break the table
    assert "## mystery" in page


def test_readme_links_point_at_files_that_exist() -> None:
    # mkdocs checks the links of docs/; the README is outside the site, so check it here
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\((?!https?:|#)([^)#\s]+)", text)
    assert targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, missing


def test_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 300


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (docs extra)"
)
def test_site_builds_strict(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
