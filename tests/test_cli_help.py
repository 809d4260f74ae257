"""CLI polish: every command documents itself with a summary and an example; --version;
shell completion."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ppo_cli import __version__
from ppo_cli.cli import app

runner = CliRunner()


def _commands() -> dict[str, str]:
    """Registered command name -> the first line of its help (its one-line summary)."""
    found: dict[str, str] = {}
    for info in app.registered_commands:
        callback = info.callback
        name = info.name or (callback.__name__.replace("_", "-") if callback else "")
        doc = (info.help or (callback.__doc__ if callback else "") or "").strip()
        found[name] = doc.splitlines()[0].strip() if doc else ""
    for group in app.registered_groups:
        doc = (group.help or "").strip()
        found[group.name or ""] = doc.splitlines()[0].strip() if doc else ""
    return found


def test_the_core_commands_are_registered() -> None:
    assert {"train", "eval", "ask"} <= set(_commands())


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_help_has_a_summary_and_an_example(name: str) -> None:
    res = runner.invoke(app, [name, "--help"])
    assert res.exit_code == 0, res.stderr
    assert "Example" in res.stdout
    summary = _commands()[name]
    assert summary, f"{name}: no one-line summary in its docstring"
    assert summary in " ".join(res.stdout.split())


def test_root_help_lists_every_command() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for name in _commands():
        assert name in res.stdout


def test_version() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.stdout.strip() == f"ppoqa {__version__}"


def test_shell_completion_options_are_offered() -> None:
    res = runner.invoke(app, ["--help"])
    assert "--install-completion" in res.stdout
    assert "--show-completion" in res.stdout
