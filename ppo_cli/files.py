"""Reading and writing the user's files safely: only regular files are read, reads never block,
and files ppoqa writes get the permissions the user's umask asks for.

A named pipe given as --dataset would make a plain open() wait forever for a writer; a device
would be read without end. Each path is stat()ed first and opened with O_NONBLOCK, and the open
file is checked again (the path may be swapped in between)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ppo_cli.errors import PpoqaError, RunError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISREG, "a regular file"),
)


def file_kind(mode: int) -> str:
    """What a stat mode is, in the words of an error message."""
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def not_regular(path: Path) -> str | None:
    """None when `path` is a regular file (or does not exist); else what it is."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else file_kind(mode)


def read_regular(
    path: str | Path,
    what: str,
    limit: int,
    *,
    error: type[PpoqaError] = RunError,
    missing_hint: str = "check the path",
    size_message: str | None = None,
    size_hint: str = "pass a smaller file",
) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, or one clear error; `what` names
    the file in messages ("dataset file", "config file", "checkpoint")."""
    p = Path(path)
    too_big = error(size_message or f"{p}: {what} is larger than {limit:,} bytes", size_hint)

    def check(st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{p}: is {file_kind(st.st_mode)}, not a {what}", f"pass a regular {what}")
        if st.st_size > limit:
            raise too_big

    try:
        check(os.stat(p))
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            check(os.fstat(fd))  # the path may have been swapped between stat() and open()
            data = bytearray()
            while chunk := os.read(fd, min(1 << 20, limit + 1 - len(data))):
                data += chunk
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise error(f"{p}: {what} not found", missing_hint) from None
    except OSError as exc:
        raise error(f"{p}: cannot read ({exc.strerror or exc})", "check the permissions") from exc
    if len(data) > limit:  # grew while we read it
        raise too_big
    return bytes(data)


def current_umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(fd: int, mode: int = 0o666) -> None:
    """Give a file made by mkstemp (always 0600) the mode a plain open() would have given."""
    os.fchmod(fd, mode & ~current_umask())
