"""Running the user's code (a --reward-fn, an env module, an env's reset/step) without letting
it break ppoqa's promises; every such call goes through `user_code(...)`:

- whatever it prints (even with os.write(1)) goes to stderr, so `--json` stays one document;
- `sys.exit()` in it is an error naming that code, not a silent exit;
- a call that does not return within PPOQA_USER_CODE_TIMEOUT seconds (default 60; 0: no
  limit) is stopped with an error naming it;
- after a stop signal, a call still running STOP_GRACE seconds later is interrupted, so one
  `timeout` or `docker stop` is enough even when the user's code blocks.

The time limits use SIGALRM: the main thread of a Unix process only."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ppo_cli.errors import PpoqaError

LIMIT_ENV = "PPOQA_USER_CODE_TIMEOUT"
DEFAULT_LIMIT = 60.0  # seconds one call into the user's code may take
STOP_GRACE = 3.0  # seconds a call may still run after a stop signal


class UserCodeStopped(KeyboardInterrupt):
    """A stop signal came while the user's code was running and it did not return in time."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class _TimeLimit(BaseException):
    """Raised inside the user's code by SIGALRM; a BaseException so that the user's own
    `except Exception:` cannot swallow it."""


_stack: list[str] = []  # the user code running now, outermost first
_state: dict[str, Any] = {"stop": False, "limit": 0.0}
_saved_stdout_fd: list[int] = []  # a duplicate of the real fd 1, made once


def limit_seconds() -> float:
    """The per-call limit: PPOQA_USER_CODE_TIMEOUT if set (0 or less: none), else 60 s."""
    try:
        value = float(os.environ.get(LIMIT_ENV, "").strip() or DEFAULT_LIMIT)
    except ValueError:
        return DEFAULT_LIMIT
    return value if value > 0 else 0.0  # NaN too: no limit


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM")


def _arm(seconds: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001) if seconds > 0 else 0.0)


def _on_alarm(signum: int, frame: Any) -> None:
    if not _stack:  # the call returned just before the alarm: nothing to stop
        return
    if _state["stop"]:
        raise UserCodeStopped(_stack[-1])
    raise _TimeLimit


def request_stop() -> None:
    """A stop signal arrived: the user's code running now (or called later) gets STOP_GRACE
    seconds to return before it is interrupted with UserCodeStopped."""
    _state["stop"] = True
    if _stack and _main_thread() and signal.getsignal(signal.SIGALRM) is _on_alarm:
        left = signal.getitimer(signal.ITIMER_REAL)[0]
        _arm(min(left, STOP_GRACE) if left > 0 else STOP_GRACE)


def clear_stop() -> None:
    _state["stop"] = False


def _stdout_to_stderr(stream: Any) -> int | None:
    """Point fd 1 at stderr when `stream` writes to it; returns the fd to restore it from, or
    None when there is no real fd 1 (under CliRunner, or stdout closed)."""
    try:
        if stream.fileno() != 1:
            return None
    except (OSError, ValueError, AttributeError):  # CliRunner's capture has no descriptor
        return None
    with suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()
    try:
        if not _saved_stdout_fd:
            _saved_stdout_fd.append(os.dup(1))
        os.dup2(2, 1)
    except OSError:
        return None
    return _saved_stdout_fd[0]


@contextmanager
def user_code(what: str, error: type[PpoqaError], hint: str) -> Iterator[None]:
    """Run the user's code (`what` names it in messages: "reward function f", "env module m");
    its failures become `error(message, hint)`."""
    outermost = not _stack
    main = _main_thread()
    old_stdout = sys.stdout
    restore_fd: int | None = None
    old_handler: Any = None
    limit = limit_seconds() if main else 0.0
    if outermost:
        if old_stdout is not None and sys.stderr is not None:
            restore_fd = _stdout_to_stderr(old_stdout)
            sys.stdout = sys.stderr
        if main:
            old_handler = signal.signal(signal.SIGALRM, _on_alarm)
            _state["limit"] = limit
            if _state["stop"]:
                _arm(min(limit, STOP_GRACE) if limit else STOP_GRACE)
            elif limit:
                _arm(limit)
    _stack.append(what)
    try:
        yield
    except SystemExit as exc:
        raise error(f"{what} called sys.exit({exc.code!r})", hint) from None
    except _TimeLimit:
        raise error(
            f"{what} did not return within {_state['limit']:g} s",
            f"make it faster, or set {LIMIT_ENV}=SECONDS to allow more (0: no limit)",
        ) from None
    finally:
        if outermost and main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL if old_handler is None else old_handler)
        _stack.pop()
        if outermost:
            # what the user's code wrote, even to sys.__stdout__, leaves while fd 1 is stderr
            for stream in (sys.stdout, sys.__stdout__):
                with suppress(OSError, ValueError, AttributeError):
                    stream.flush()  # type: ignore[union-attr]
            if restore_fd is not None:
                with suppress(OSError):
                    os.dup2(restore_fd, 1)
            sys.stdout = old_stdout
