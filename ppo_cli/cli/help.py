"""`--help` that reads at any width, and value completion for settings with choices.

Typer's help is a table: names, type, then the help in what is left, which at 80 columns left
train's options a ~20-column strip and cut names (`--trace-iteratio…`). Below WIDE columns each
option is stacked instead: names and type on one line, the help wrapped under it at full width.
Switches (`--x/--no-x`, `--json`) show no `<bool>` type: taking no value makes them switches.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.errors import MarkupError
from rich.text import Text
from typer.core import TyperCommand

WIDE = 100  # columns from which typer's own table layout has room for names and help


def _markup(text: str) -> Text:
    try:
        return Text.from_markup(text)
    except MarkupError:  # help text that is not markup: show it as written
        return Text(text)


def _paragraphs(doc: str) -> list[str]:
    """A docstring's paragraphs, each on one line (the terminal wraps them)."""
    text = inspect.cleandoc(doc).replace("\\\\", "\\")
    # lines joined, spaces inside a line kept ("ppoqa train   |   ppoqa eval": two examples)
    return [" ".join(ln.strip() for ln in p.splitlines()) for p in text.split("\n\n") if p.strip()]


def _names(param: Any) -> str:
    names = " / ".join(", ".join(opts) for opts in (param.opts, param.secondary_opts) if opts)
    if getattr(param, "param_type_name", "") == "argument":
        names = (param.metavar or param.name or "").upper()
    return names


def _type(param: Any, ctx: Any) -> str:
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    try:
        shown = param.display_type_rich(ctx=ctx)
    except Exception:  # a parameter type typer builds differently: show no type
        return ""
    shown = str(shown or "").replace(" range", "")
    kind = f"<{shown}>" if shown and not shown.startswith("<") else shown
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None and high is not None:
        kind += f" [{low}<=x<={high}]"
    elif low is not None:
        kind += f" [x>={low}]"
    elif high is not None:
        kind += f" [x<={high}]"
    return kind


def _default(param: Any) -> str:
    if getattr(param, "param_type_name", "") != "option" or param.show_default is False:
        return ""
    value = param.default
    if value is None or value is False or callable(value) or value in ((), []):
        return ""
    if value is True:
        value = "on"
    return f" \\[default: {value}]"


class Indented:
    """Text wrapped to the width left after `indent` spaces, with no trailing padding (Rich's
    Padding fills every line to the width with spaces)."""

    def __init__(self, text: Text, indent: int) -> None:
        self.text, self.indent = text, indent

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(20, options.max_width - self.indent)
        for line in self.text.wrap(console, width):
            line.rstrip()
            yield Text(" " * self.indent) + line


def stacked_help(command: Any, ctx: Any) -> Group:
    """The help of a command with each option stacked: names, then its help indented; the
    root's (a group's) then lists each command with its summary below."""
    parts: list[Any] = [Text(f" {command.get_usage(ctx)}", style="bold"), Text("")]
    for para in _paragraphs(command.help or ""):
        parts += [Indented(_markup(para), 1), Text("")]
    panels: dict[str, list[Any]] = {}
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        kind = getattr(param, "param_type_name", "")
        panel = getattr(param, "rich_help_panel", None) or (
            "Arguments" if kind == "argument" else "Options"
        )
        head = Text("   ")
        head.append(_names(param), style="bold cyan")
        shown = _type(param, ctx)
        if shown:
            head.append(Text(f" {shown}", style="yellow"))
        body = (getattr(param, "help", None) or "") + _default(param)
        rows = panels.setdefault(panel, [])
        rows.append(head)
        if body.strip():
            rows.append(Indented(_markup(body.strip()), 7))
    order = ["Arguments", *[p for p in panels if p not in ("Arguments", "Options")], "Options"]
    for name in order:
        if name in panels:
            parts += [Text(f" {name}", style="bold"), *panels[name], Text("")]
    if hasattr(command, "list_commands"):  # the root: then each command, its summary below
        parts.append(Text(" Commands", style="bold"))
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            summary = _paragraphs(sub.help or "")[:1]
            parts.append(Text(f"   {name}", style="bold cyan"))
            if summary:
                parts.append(Indented(_markup(summary[0]), 7))
    return Group(*parts)


def format_help(command: Any, ctx: Any, typer_help: Callable[[], None]) -> None:
    """Stacked below WIDE columns; from there typer's table, run with every switch's metavar
    blanked, since typer prints it as the type column (never a <bool> type for a switch)."""
    if Console().width < WIDE:  # $COLUMNS, else the terminal's, else 80 (as Rich)
        Console(highlight=False).print(stacked_help(command, ctx))
        return
    flags = [p for p in command.get_params(ctx) if getattr(p, "is_flag", False)]
    saved = [p.metavar for p in flags]
    try:
        for p in flags:
            p.metavar = ""
        typer_help()
    finally:
        for p, m in zip(flags, saved, strict=True):
            p.metavar = m


class PpoqaCommand(TyperCommand):
    """A command whose help stacks each option below WIDE columns, and never shows <bool>."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        format_help(self, ctx, lambda: super(PpoqaCommand, self).format_help(ctx, formatter))


def complete_from(values: Iterable[str] | Callable[[], Iterable[str]]) -> Callable[..., list]:
    """A typer autocompletion callback offering `values` that start with what was typed."""

    def complete(incomplete: str) -> list[str]:
        choices = values() if callable(values) else values
        return [v for v in choices if v.startswith(incomplete)]

    return complete


def env_ids() -> list[str]:
    """text-qa and every registered gymnasium id (importing gymnasium only, not torch)."""
    import gymnasium

    return ["text-qa", *sorted(gymnasium.envs.registry)]
