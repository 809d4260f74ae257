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


def fail(
    code: str, message: str, hint: str, exit_code: int, as_json: bool, label: str = "error"
) -> NoReturn:
    """The one error shape: `ppoqa: error: <message> (hint: <hint>)` on stderr, or in --json
    mode {"error": {code, message, hint}} as the only document on stdout."""
    if as_json:
        print_json({"error": {"code": code, "message": message, "hint": hint}})
    else:
        line = f"ppoqa: {label}: {message}" + (f" (hint: {hint})" if hint else "")
        sys.stderr.write(line.replace("\n", " ") + "\n")
        sys.stderr.flush()
    raise typer.Exit(exit_code)


def _silence_stdout() -> None:
    """The reader of our stdout went away (`| head`): point fd 1 at /dev/null so the final
    flush at exit cannot fail with 'Exception ignored ... BrokenPipeError'."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real fd (e.g. under CliRunner)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115


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
        fail(exc.code, exc.message, exc.hint, exc.exit_code, as_json, exc.label)
    except KeyboardInterrupt:
        fail("interrupted", "stopped by Ctrl-C", "", 130, as_json, "interrupted")
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`): not an error worth a message.
        _silence_stdout()
        raise typer.Exit(0) from None
    except Exception as exc:
        if debug():
            raise
        fail("internal", f"unexpected {type(exc).__name__}: {exc}", DEBUG_HINT, 1, as_json)


class PpoqaGroup(TyperGroup):
    """Typer group whose usage errors are one line on stderr (or JSON with --json), exit 2.

    Usage errors found by the option parser (unknown option, a value that is not a number)
    keep exit code 2 in --json mode too, with {"error": {"code": "usage", ...}} on stdout.
    """

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        standalone = extra.pop("standalone_mode", True)
        as_json = "--json" in argv
        try:
            rv = super().main(args=argv, prog_name=prog_name, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # usage errors (exit 2) and other CLI-level errors
            ctx = getattr(exc, "ctx", None)
            path = ctx.command_path if ctx is not None else "ppoqa"
            code = getattr(exc, "exit_code", 1)
            rv = code
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            # An empty message: `ppoqa` alone, whose help is already printed; no empty error line.
            if message.strip():
                try:
                    fail(
                        "usage" if code == 2 else "cli",
                        message,
                        f"see `{path} --help`",
                        code,
                        as_json,
                    )
                except typer.Exit as done:
                    rv = done.exit_code
        except typer.Abort:
            sys.stderr.write("ppoqa: interrupted\n")
            rv = 130
        except BrokenPipeError:
            _silence_stdout()
            rv = 0
        except Exception as exc:  # last resort: a bug outside a command body
            if debug():
                raise
            try:
                fail("internal", f"unexpected {type(exc).__name__}: {exc}", DEBUG_HINT, 1, as_json)
            except typer.Exit as done:
                rv = done.exit_code
        if not standalone:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)
