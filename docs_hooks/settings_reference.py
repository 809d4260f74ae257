"""MkDocs hook: the `<!-- settings-reference -->` line of a page becomes a table of every
training setting, read from ppo_cli.config.Config at build time, so the reference shows the
defaults and help the code has, never a copy of them."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

PLACEHOLDER = "<!-- settings-reference -->"
ROOT = Path(__file__).resolve().parents[1]


def _default(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"`{value}`"


def settings_tables() -> str:
    if str(ROOT) not in sys.path:  # the checkout's package, also without an install
        sys.path.insert(0, str(ROOT))
    import inspect

    from ppo_cli.cli.train import train_command
    from ppo_cli.config import Config

    params = inspect.signature(train_command).parameters
    panels: dict[str, list[str]] = {}
    for f in dataclasses.fields(Config):
        # a setting without a flag of its own is set in a --config file (or a dataset's rewards:)
        flagged = f.name in params or f.name.rstrip("s") in params  # env_kwargs: --env-kwargs
        flag = f"`--{f.name.replace('_', '-')}`" if flagged else "config file"
        kinds = " and ".join(f.metadata.get("kinds", ()))
        help_text = f.metadata.get("help", "").replace("|", "\\|")
        row = f"| `{f.name}` | {flag} | {_default(f.default)} | {kinds} | {help_text} |"
        panels.setdefault(f.metadata.get("panel", "Other"), []).append(row)
    out = []
    for panel, rows in panels.items():
        out += [f"### {panel}", "", "| setting | flag | default | applies to | what it does |"]
        out += ["|---|---|---|---|---|", *rows, ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, **_: Any) -> str:
    if PLACEHOLDER in markdown:
        markdown = markdown.replace(PLACEHOLDER, settings_tables())
    return markdown
