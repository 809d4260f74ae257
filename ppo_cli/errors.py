"""One error type for everything a user can get wrong: the CLI turns a PpoqaError into one line
(or a JSON error object) and an exit code; anything else is a bug."""

from __future__ import annotations

import sys


class PpoqaError(Exception):
    """A problem the user can fix: what went wrong, and a hint how to fix it."""

    code: str = "error"
    exit_code: int = 1
    label: str = "error"  # the word after "ppoqa:" on stderr

    def __init__(self, message: str, hint: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class DatasetError(PpoqaError):
    """A QA dataset file that cannot be used as written."""

    code = "dataset"


class ConfigError(PpoqaError):
    """A config file, preset or option value that is out of range or unknown."""

    code = "config"


class UsageError(ConfigError):
    """Wrong use of a command: bad option combination or value (exit code 2); a settings
    error made on the command line."""

    code = "usage"
    exit_code = 2


class RunError(PpoqaError):
    """A run directory or checkpoint that is missing, locked, corrupted or incompatible."""

    code = "run"


class EnvError(PpoqaError):
    """An environment id or space ppoqa cannot train on."""

    code = "env"


class TrainingError(PpoqaError):
    """Training stopped because the numbers went bad (NaN/Inf)."""

    code = "training"


class TrainingInterrupted(PpoqaError):
    """Ctrl-C during training: the run was saved and can be resumed (exit code 130)."""

    code = "interrupted"
    exit_code = 130
    label = "interrupted"
    saved_iteration: int | None = None  # the iteration of the checkpoint left on disk


def short_repr(value: object, limit: int = 60) -> str:
    """repr() for error messages, cut short: user input can be huge (or a YAML alias bomb)."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxdict = 2, 4, 4
    r.maxstring = r.maxother = r.maxlong = limit
    text = r.repr(value)
    return text if len(text) <= limit + 10 else text[:limit] + "..."


def warn_stderr(message: str) -> None:
    """A warning as one stderr line, for callers that draw no terminal UI of their own."""
    sys.stderr.write(f"ppoqa: warning: {message}\n")
    sys.stderr.flush()


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (a one-line error has room for no more)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
