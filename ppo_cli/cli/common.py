"""What every command shares: the two consoles, one error shape, JSON output.

stdout carries data (tables, answers, JSON); stderr carries progress, logs and errors.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

from ppo_cli.errors import PpoqaError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DEBUG_HINT = "set PPOQA_DEBUG=1 for a traceback"


def debug() -> bool:
    return os.environ.get("PPOQA_DEBUG", "") not in ("", "0")


def print_json(doc: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(code: str, message: str, hint: str, exit_code: int, as_json: bool) -> NoReturn:
    if as_json:
        print_json({"error": {"code": code, "message": message, "hint": hint}})
    else:
        line = f"ppoqa: error: {message}" + (f" (hint: {hint})" if hint else "")
        sys.stderr.write(line.replace("\n", " ") + "\n")
        sys.stderr.flush()
    raise typer.Exit(exit_code)


@contextmanager
def handle_errors(as_json: bool = False) -> Iterator[None]:
    """Turn our errors into one line (or one JSON object) and an exit code; never a traceback
    unless PPOQA_DEBUG=1."""
    try:
        yield
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except PpoqaError as exc:
        if debug():
            raise
        fail(exc.code, exc.message, exc.hint, exc.exit_code, as_json)
    except KeyboardInterrupt:
        sys.stderr.write("ppoqa: interrupted\n")
        raise typer.Exit(130) from None
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`): not an error worth a message.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        raise typer.Exit(0) from None
    except Exception as exc:
        if debug():
            raise
        fail("internal", f"unexpected {type(exc).__name__}: {exc}", DEBUG_HINT, 1, as_json)


class PpoqaGroup(TyperGroup):
    """Typer group whose usage errors are one line on stderr (or JSON with --json), exit 2."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        standalone = extra.pop("standalone_mode", True)
        try:
            rv = super().main(args=argv, prog_name=prog_name, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # usage errors (exit 2) and other CLI-level errors
            ctx = getattr(exc, "ctx", None)
            path = ctx.command_path if ctx is not None else "ppoqa"
            code = exc.exit_code
            rv = code
            # An empty message: `ppoqa` alone, whose help is already printed; no empty error line.
            if exc.format_message().strip():
                try:
                    fail(
                        "usage" if code == 2 else "cli",
                        exc.format_message(),
                        f"see `{path} --help`",
                        code,
                        "--json" in argv,
                    )
                except typer.Exit as done:
                    rv = done.exit_code
        except typer.Abort:
            sys.stderr.write("ppoqa: interrupted\n")
            rv = 130
        if not standalone:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)
