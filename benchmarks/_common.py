"""What the benchmark scripts share: the repeatable `--set KEY=VALUE` option."""

from __future__ import annotations

import argparse
from typing import Any

import yaml


def add_set_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any Config field, YAML-parsed (repeatable)",
    )


def parse_set(items: list[str]) -> dict[str, Any]:
    """{'learning_rate': 0.003} from ['learning_rate=0.003']: YAML reads the values' types."""
    return {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in items)}
