"""What every command shares: the two consoles, one error shape, JSON output, and the
broken-pipe rule.

stdout carries data (tables, answers, JSON); stderr carries progress, logs and errors.

The broken-pipe rule, for every command and every output (tables, traces, help, progress,
JSON): when the reader goes away (`ppoqa eval | head -1`), ppoqa stops writing and exits 0
without a message; files already saved stay (a training saves its finished iteration first).
Rich's own handling would exit 1, so a pipeline under `set -o pipefail` would report a
training that saved its files as failed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.measure import Measurement
from typer.core import TyperGroup

from ppo_cli.errors import PpoqaError

READER_GONE = threading.Event()  # set when a write to stdout or stderr found no reader
_DEFER = threading.local()  # .on: a training is mid-iteration; stop at its boundary instead


def _silence(stream: Any) -> None:
    """Point the stream's fd at /dev/null, so later writes and the final flush at exit cannot
    fail ('Exception ignored ... BrokenPipeError')."""
    with suppress(OSError, ValueError, AttributeError):  # no real fd (e.g. under CliRunner)
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


def _on_broken_pipe(self: Console) -> None:
    """Every Rich console (ours and typer's help): a broken pipe is the reader leaving.

    In the main thread it raises BrokenPipeError, which handle_errors and PpoqaGroup turn into
    exit 0; in a thread (a progress bar's refresh) it only notes it, and the training loop stops
    at its next iteration boundary (RichCallbacks.on_iteration)."""
    self.quiet = True
    _silence(self.file)
    READER_GONE.set()
    deferred = getattr(_DEFER, "on", False)
    if threading.current_thread() is threading.main_thread() and not deferred:
        raise BrokenPipeError


@contextmanager
def reader_gone_stops_at_boundary() -> Iterator[None]:
    """While a training runs, a reader going away never interrupts an iteration: the output
    is silenced, and the loop stops at the next boundary with that iteration saved
    (RichCallbacks.on_iteration raises BrokenPipeError there)."""
    _DEFER.on = True
    try:
        yield
    finally:
        _DEFER.on = False


Console.on_broken_pipe = _on_broken_pipe  # type: ignore[method-assign]

_MEASURE_WIDTH = 100_000  # "as wide as it likes", for measuring a table's natural width


class DataConsole(Console):
    """The stdout console. On a terminal it fits the terminal. On a pipe or a file a table is
    never drawn narrower than its data: `COLUMNS=40 ppoqa eval | cat` prints every cell whole,
    where Rich would shorten cells to COLUMNS (or 80) with "…". A view that splits itself to
    fit a width (render.Fit) still splits at COLUMNS: it measures as no wider than that."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        fitted = self.is_terminal or kwargs.get("width") is not None
        widest = 0 if fitted else max((self._data_width(o) for o in objects), default=0)
        if widest <= self.options.max_width:
            super().print(*objects, **kwargs)
            return
        saved = self._width
        self._width = widest
        try:
            super().print(*objects, **kwargs)
        finally:
            self._width = saved

    def _data_width(self, obj: Any) -> int:
        """The narrowest width that draws obj's tables whole: a table's natural width, a view
        that splits itself (render.Fit) its narrowest whole split, a Group its widest part.
        Text says nothing: soft_wrap never cuts it."""
        from rich.console import Group
        from rich.table import Table

        if isinstance(obj, Table):
            return Measurement.get(self, self.options.update_width(_MEASURE_WIDTH), obj).maximum
        if hasattr(obj, "whole_width"):
            return int(obj.whole_width())
        if isinstance(obj, Group):
            return max((self._data_width(o) for o in obj.renderables), default=0)
        return 0


out = DataConsole(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DEBUG_HINT = "set PPOQA_DEBUG=1 for a traceback"


def debug() -> bool:
    return os.environ.get("PPOQA_DEBUG", "") not in ("", "0")


def print_json(doc: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def emit(doc: Any, as_json: bool, view: Any, **print_kw: Any) -> None:
    """A command's result: with --json the one JSON document, else view(doc) on stdout."""
    if as_json:
        print_json(doc)
    else:
        out.print(view(doc), **print_kw)


STDOUT_HINT = "ppoqa writes its results to stdout; redirect it to a file, a pipe or /dev/null"


_STDOUT_FAILED: list[OSError] = []  # the first failed write to the real stdout


class DataStdout:
    """sys.stdout of the real process: the same stream, remembering the first write or flush
    that failed (a full disk, a closed descriptor), so the error path knows stdout is gone and
    says so on stderr instead of writing more to it. A reader that went away
    (BrokenPipeError) is not such a failure: the broken-pipe rule handles it."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _guard(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except OSError as exc:
            if not _STDOUT_FAILED and not isinstance(exc, BrokenPipeError):
                _STDOUT_FAILED.append(exc)
            raise

    def write(self, text: str) -> int:
        return self._guard(self._stream.write, text)

    def writelines(self, lines: Any) -> None:
        self._guard(self._stream.writelines, lines)

    def flush(self) -> None:
        self._guard(self._stream.flush)


def stdout_failure() -> OSError | None:
    """Why stdout could not be written (full disk, bad descriptor), or None. Flushes first, so
    that bytes still buffered count."""
    if not _STDOUT_FAILED and sys.stdout is not None:
        with suppress(OSError, ValueError):
            sys.stdout.flush()
    return _STDOUT_FAILED[0] if _STDOUT_FAILED else None


def say_stdout_failed(failure: OSError) -> int:
    """One line on stderr (never on the stdout that failed) and exit code 1; later writes to
    stdout are silenced so that the exit's own flush cannot add a traceback."""
    _silence(sys.stdout)
    with suppress(OSError, ValueError):
        sys.stdout.flush()  # the silenced fd takes what was left in the buffer
    reason = failure.strerror or str(failure)
    with suppress(OSError, ValueError, AttributeError):
        sys.stderr.write(f"ppoqa: error: cannot write to stdout: {reason} (hint: {STDOUT_HINT})\n")
        sys.stderr.flush()
    return 1


def fail(
    code: str, message: str, hint: str, exit_code: int, as_json: bool, label: str = "error"
) -> NoReturn:
    """The one error shape: `ppoqa: error: <message> (hint: <hint>)` on stderr, or in --json
    mode {"error": {code, message, hint}} as the only document on stdout."""
    if as_json and stdout_failure() is None:
        try:
            print_json({"error": {"code": code, "message": message, "hint": hint}})
        except OSError:
            failure = stdout_failure()
            if failure is None:
                raise
            raise typer.Exit(say_stdout_failed(failure)) from None
    else:
        line = f"ppoqa: {label}: {message}" + (f" (hint: {hint})" if hint else "")
        sys.stderr.write(line.replace("\n", " ") + "\n")
        sys.stderr.flush()
    raise typer.Exit(exit_code)


def _silence_stdout() -> None:
    """The reader of our stdout (or stderr) went away (`| head`): silence both, so nothing
    more is written and the final flush at exit cannot fail."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.fileno()
        except (OSError, ValueError, AttributeError):  # no real fd (e.g. under CliRunner)
            continue
        with suppress(OSError, ValueError):
            stream.flush()
        _silence(stream)


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
        failure = stdout_failure() if isinstance(exc, OSError) else None
        if failure is not None:
            raise typer.Exit(say_stdout_failed(failure)) from None
        if debug():
            raise
        fail("internal", f"unexpected {type(exc).__name__}: {exc}", DEBUG_HINT, 1, as_json)


def blank_option(command: Any, argv: list[str]) -> str | None:
    """The first path or text option given an empty or blank value (`--run-dir "$UNSET"`),
    or None. Path('') is the current directory: taken as given, a run would be written there."""
    names = set()
    for param in getattr(command, "params", []):
        if getattr(param, "param_type_name", "") != "option" or getattr(param, "is_flag", False):
            continue
        try:
            kind = param.bare_type()
        except Exception:  # a parameter type typer builds differently: not ours to judge
            continue
        # a type, or its name when the module was written with `from __future__ import annotations`
        if getattr(kind, "__name__", kind) in ("str", "Path"):
            names.update(param.opts)
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        flag, eq, value = arg.partition("=")
        if flag in names:
            if not eq:
                if i + 1 >= len(argv):
                    continue
                value = argv[i + 1]
            if not value.strip():
                return flag
    return None


class BadValue(typer.BadParameter):
    """A flag's value refused by its typer parser or callback: exit 2 and one line that names
    the flag and the value (`--epochs must be >= 1, got 0`), with ppoqa's hint instead of the
    generic "see --help"."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def format_message(self) -> str:
        flag = self.param.opts[0] if self.param is not None and self.param.opts else None
        return f"{flag} {self.message}" if flag else self.message


class PpoqaGroup(TyperGroup):
    """Typer group whose usage errors (unknown option, a value that is not a number) are one
    line on stderr, or with --json {"error": {"code": "usage", ...}} on stdout; exit 2."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """Stacked below 100 columns; never a <bool> type for a switch (ppo_cli.cli.help)."""
        from ppo_cli.cli.help import format_help

        format_help(self, ctx, lambda: super(PpoqaGroup, self).format_help(ctx, formatter))

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        standalone = extra.pop("standalone_mode", True)
        as_json = "--json" in argv
        name = next((a for a in argv if not a.startswith("-")), None)
        blank = blank_option(self.commands.get(name or ""), argv)
        try:  # what goes wrong outside a command's body gets the same one line
            with handle_errors(as_json):
                if blank is not None:
                    hint = f"give {blank} a value (is the shell variable you meant unset?)"
                    fail("usage", f"{blank} is empty", hint, 2, as_json)
                try:
                    rv = super().main(
                        args=argv, prog_name=prog_name, standalone_mode=False, **extra
                    )
                except typer.TyperException as exc:  # usage errors (exit 2), other CLI errors
                    ctx = getattr(exc, "ctx", None)
                    path = ctx.command_path if ctx is not None else "ppoqa"
                    rv = getattr(exc, "exit_code", 1)
                    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
                    # Empty: `ppoqa` alone, whose help is already printed; no empty error line.
                    if message.strip():
                        hint = getattr(exc, "hint", "") or f"see `{path} --help`"
                        fail("usage" if rv == 2 else "cli", message, hint, rv, as_json)
        except typer.Exit as done:
            rv = done.exit_code
        except typer.Abort:
            sys.stderr.write("ppoqa: interrupted\n")
            rv = 130
        if not standalone:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)
