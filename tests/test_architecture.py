"""The package's shape: every module imports on its own, the import graph (function-level
imports included) has no cycle, no module imports another's _private names, and the core never
imports typer or rich."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "ppo_cli"
# Where typer and rich may be imported: the command line and the Rich builders.
UI_PREFIXES = ("ppo_cli.cli", "ppo_cli.render")


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports_of(name: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import anywhere in the file."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    is_pkg = MODULES[name].name == "__init__.py"
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.append(
                    (sub, None, node.lineno) if sub in MODULES else (base, a.name, node.lineno)
                )
    return found


def graph() -> dict[str, set[str]]:
    return {
        name: {mod for mod, _, _ in imports_of(name) if mod in MODULES and mod != name}
        for name in MODULES
    }


def test_import_graph_is_acyclic() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name)


def test_no_private_cross_module_imports() -> None:
    bad = [
        f"{name}:{line} imports {mod}.{what}"
        for name in MODULES
        for mod, what, line in imports_of(name)
        if mod.startswith("ppo_cli")
        and mod != name
        and what
        and what.startswith("_")
        and not what.endswith("__")  # __version__ and the like are public
    ]
    assert not bad, bad


def test_core_never_imports_typer_or_rich() -> None:
    bad = [
        f"{name}:{line} imports {mod}"
        for name in MODULES
        if not name.startswith(UI_PREFIXES)
        for mod, _, line in imports_of(name)
        if mod.split(".")[0] in ("typer", "rich")
    ]
    assert not bad, bad


def test_the_graph_sees_function_level_imports() -> None:
    """The checks above read imports inside functions too (a cycle can hide there)."""
    code = "def f():\n    from ppo_cli.core.trainer import train\n"
    tree = ast.parse(code)
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(tree))
    assert "ppo_cli.core.trainer" in graph()["ppo_cli.cli.train"]


# Import third-party libraries once, then fork one child per ppo_cli module: each child imports
# its module into an interpreter that has imported no ppo_cli module yet.
ISOLATED = r"""
import os, sys, traceback
import numpy, torch, gymnasium, yaml, typer, rich, matplotlib  # noqa: F401  (third party only)
assert not [m for m in sys.modules if m.split('.')[0] == 'ppo_cli']
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            __import__(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1] != 0:
        failed.append(name)
print("failed:", failed)
sys.exit(1 if failed else 0)
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_every_module_imports_on_its_own() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", ISOLATED, *sorted(set(MODULES) - {"ppo_cli.__main__"})],
        capture_output=True,
        text=True,
        cwd=PKG.parent,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]


def test_every_config_field_says_its_help_and_kinds_of_run() -> None:
    from ppo_cli.config import BOTH, FIELDS, GYM, TEXT

    for name, f in FIELDS.items():
        assert f.metadata["help"].strip(), name
        assert f.metadata["kinds"] in (TEXT, GYM, BOTH), name


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--timesteps", "1000"], "--timesteps"),
        (["--num-envs", "2"], "--num-envs"),
        (["--vector-mode", "sync"], "--vector-mode"),
        (["--env", "CartPole-v1", "--dataset", "x.yaml"], "--dataset"),
        (["--env", "CartPole-v1", "--curriculum"], "--curriculum"),
        (["--env", "CartPole-v1", "--target-accuracy", "0.5"], "--target-accuracy"),
        (["--env", "CartPole-v1", "--answer-vocab"], "--answer-vocab"),
    ],
)
def test_a_flag_for_another_kind_of_run_is_a_usage_error(args: list[str], flag: str) -> None:
    from typer.testing import CliRunner

    from ppo_cli.cli import app

    res = CliRunner().invoke(app, ["train", "-q", *args])
    assert res.exit_code == 2, res.output
    assert f"{flag} is for " in res.stderr and res.stderr.count("\n") == 1


def test_train_help_groups_options_in_panels_and_shows_config_defaults() -> None:
    from typer.testing import CliRunner

    from ppo_cli.cli import app

    res = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "80"})
    assert res.exit_code == 0
    text = res.output
    # a boxed panel when wide, a heading line above its stacked options when narrow
    lines = {line.rstrip() for line in text.splitlines()}
    panels = [
        p
        for p in ("Run", "Text QA", "Gymnasium", "PPO", "Output")
        if f"─ {p} ─" in text or f" {p}" in lines
    ]
    assert panels == ["Run", "Text QA", "Gymnasium", "PPO", "Output"]
    assert "[default: 0.005]" in text  # Config.learning_rate, not a copy in the help text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_help_and_version_import_neither_torch_nor_gymnasium() -> None:
    """`ppoqa --help`, `--version` and `train --help` answer without the heavy libraries (start-up
    time itself is measured in benchmarks/startup.py)."""
    code = (
        "import sys\nfrom ppo_cli.cli import app\n"
        "for args in (['--help'], ['--version'], ['train', '--help']):\n"
        "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
        "heavy = [m for m in ('torch', 'gymnasium', 'numpy', 'matplotlib', 'yaml')"
        " if m in sys.modules]\nprint(heavy)\nsys.exit(1 if heavy else 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


SHARED = ("ppo_cli.errors", "ppo_cli.files", "ppo_cli.yamlio", "ppo_cli.usercode")
SHARED += ("ppo_cli.config", "ppo_cli.presets", "ppo_cli.core")
WINGS = ("ppo_cli.textqa", "ppo_cli.gym")
ABOVE = ("ppo_cli.teach", "ppo_cli.sweep", "ppo_cli.render", "ppo_cli.plotting", "ppo_cli.cli")


# The loop reaches a wing through the registry of kinds; resolve() asks the gymnasium wing
# whether an id without a tuned entry acts in a Box (its defaults depend on it).
SEAMS = {("ppo_cli.core.trainer", "ppo_cli.kinds"), ("ppo_cli.config", "ppo_cli.gym.envs")}


def _within(name: str, places: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in places)


def test_the_wings_stand_on_the_core_and_not_on_each_other() -> None:
    """The core and the shared modules import no wing (but through the SEAMS), a wing imports neither the other wing nor anything that reads or renders
    its records, and nothing below the CLI imports the CLI."""
    bad = []
    for name in MODULES:
        for mod, _, line in imports_of(name):
            if mod not in MODULES or mod == name:
                continue
            seam = (name, mod) in SEAMS
            if _within(name, SHARED) and not _within(mod, SHARED) and not seam:
                bad.append(f"{name}:{line} imports {mod}")
            for wing in WINGS:
                others = tuple(w for w in WINGS if w != wing) + ABOVE
                if _within(name, (wing,)) and _within(mod, others):
                    bad.append(f"{name}:{line} imports {mod}")
    assert not bad, bad
