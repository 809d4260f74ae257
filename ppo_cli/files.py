"""Reading and writing the user's files safely: only regular files are read, reads never block,
and files ppoqa writes get the permissions the user's umask asks for.

A named pipe given as --dataset would make a plain open() wait forever for a writer; a device
would be read without end. Each path is stat()ed first and opened with O_NONBLOCK, and the open
file is checked again (the path may be swapped in between).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ppo_cli.errors import PpoqaError, RunError


def file_kind(mode: int) -> str:
    """What a stat mode is, in the words of an error message."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "not a regular file"


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
    """The bytes of a regular file of at most `limit` bytes, or one clear error.

    `what` names the file in messages ("dataset file", "config file", "checkpoint").
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error(f"{p}: {what} not found", missing_hint) from None
    except OSError as exc:
        raise error(f"{p}: cannot read ({exc.strerror or exc})", "check the permissions") from exc
    if not stat.S_ISREG(st.st_mode):
        kind = file_kind(st.st_mode)
        raise error(f"{p}: is {kind}, not a {what}", f"pass a regular {what}")
    if st.st_size > limit:
        raise error(size_message or f"{p}: {what} is larger than {limit:,} bytes", size_hint)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"{p}: cannot read ({exc.strerror or exc})", "check the permissions") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped between stat() and open()
            raise error(f"{p}: is {file_kind(st.st_mode)}, not a {what}", f"pass a regular {what}")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise error(f"{p}: cannot read ({exc.strerror or exc})", "check the permissions") from exc
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:  # grew while we read it
        raise error(size_message or f"{p}: {what} is larger than {limit:,} bytes", size_hint)
    return data


def current_umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(fd: int, mode: int = 0o666) -> None:
    """Give a file made by mkstemp (always 0600) the mode a plain open() would have given."""
    os.fchmod(fd, mode & ~current_umask())
