"""The run directory: the contract between `train` and `eval`, `ask`, `plot`, `explain-gae`.

    runs/<stamp>-<env>-s<seed>/
      config.yaml      resolved settings
      metrics.jsonl    one JSON object per iteration
      dataset.yaml     text QA: the pairs trained on (so `ask`/`eval` need nothing else)
      vocab.json       text QA: the token list
      checkpoint.pt    tensors and plain values only (torch.load(weights_only=True)), with a
                       format version and a SHA-256 of its payload
      .lock            while a training runs: its pid, and an OS lock (flock) held by the
                       training process (one training per directory; dies with the process)
      .ppoqa-run       the marker: this folder was made by ppoqa, so ppoqa may write in it

Every file is written to a temporary name and renamed, so a crash never leaves half a file;
files get the permissions the user's umask gives (not mkstemp's 0600). ppoqa writes only into a
new folder, an empty one, or one holding its marker: never over files a user made."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from ppo_cli.errors import RunError
from ppo_cli.files import apply_umask, file_kind, read_regular

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.yaml"
DATASET = "dataset.yaml"
VOCAB = "vocab.json"
FINAL_EVAL = "final_eval.json"  # gymnasium: the greedy evaluation after training
LOCK = ".lock"
MARKER = ".ppoqa-run"
# 2: the payload is stored as its own torch file (bytes) next to its SHA-256, so a flipped byte
# anywhere is caught (torch does not check its zip CRCs on load).
FORMAT_VERSION = 2
DEFAULT_RUNS = Path("runs")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target: a failure
    at any point (disk full, Ctrl-C) removes the temp file and keeps the previous version."""
    hint, tmp = "check the run directory's permissions", None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            apply_umask(fd)
            hint = "free disk space or check permissions; the previous version of the file is kept"
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise RunError(f"{path}: cannot write ({exc.strerror or exc})", hint) from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def new_run_dir(env: str, seed: int, root: Path = DEFAULT_RUNS) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # Only characters every shell, scp and Windows path takes: "mymod:LineWorld-v0" has a
    # colon (scp reads host:path; Windows refuses it), "ALE/Pong-v5" a slash.
    safe_env = re.sub(r"[^A-Za-z0-9._-]+", "_", env).strip("._") or "env"
    base = root / f"{stamp}-{safe_env}-s{seed}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def _is_own(name: str) -> bool:
    """What ppoqa itself leaves in a folder besides a run's files (a folder holding only these
    is as good as empty): the marker, the lock, a write probe or a temp file of a killed write."""
    return name in (MARKER, LOCK) or name.startswith(".write-test.") or name.endswith(".tmp")


def marker_kind(path: Path) -> str | None:
    """What ppoqa made this folder as ("run directory", "sweep folder"), from its marker's
    first line; None without a marker or one that does not say."""
    try:
        with (path / MARKER).open(encoding="utf-8", errors="replace") as fh:
            first = fh.readline(200)
    except OSError:
        return None
    head, sep, _ = first.partition(":")
    return head.removeprefix("ppoqa ").strip() if sep and head.startswith("ppoqa ") else None


def claim_dir(
    path: Path,
    what: str = "run directory",
    flag: str = "--run-dir",
    early: tuple[str, ...] = (),
    create: bool = True,
) -> Path:
    """Make sure ppoqa may write in `path`: a new folder, an empty one, or one ppoqa made (its
    file names are names users use too); the marker written here recognizes it from now on."""
    if path.is_symlink() and not path.exists():
        raise RunError(f"{path}: is a dangling symbolic link", f"choose another {flag}")
    if path.exists() and not path.is_dir():
        raise RunError(f"{path}: exists and is not a directory", f"choose another {flag}")
    kind = marker_kind(path)
    if kind is not None and kind != what:
        raise RunError(
            f"{path}: is a ppoqa {kind}, not a {what}; their files would mix",
            f"choose another {flag}",
        )
    # early: files ppoqa writes before it claims the folder (a sweep's study.db)
    ours = (path / MARKER).is_file() or (early and all((path / n).is_file() for n in early))
    if path.is_dir() and not ours:
        try:
            names = sorted(n for n in os.listdir(path) if not _is_own(n))
        except OSError as exc:
            raise RunError(
                f"{path}: cannot list the {what} ({exc.strerror})", f"choose another {flag}"
            ) from exc
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise RunError(
                f"{path}: is not empty and not a ppoqa {what} (it holds {shown}); ppoqa does "
                "not write over files it did not make",
                f"choose a new or empty {flag}",
            )
    if not create:  # only the check: the folder is made later, by whoever writes first
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
        if not (path / MARKER).exists():
            atomic_write_text(
                path / MARKER, f"ppoqa {what}: ppoqa writes here; do not put your own files here\n"
            )
    except OSError as exc:
        parent_is_file = exc.errno == errno.ENOTDIR
        reason = "a parent of it is a file, not a directory" if parent_is_file else exc.strerror
        raise RunError(
            f"{path}: {what} is not writable ({reason or exc})", f"choose another {flag}"
        ) from exc
    return path


prepare_run_dir = claim_dir  # a run directory, claimed before any training time is spent


def holds_run(path: Path) -> bool:
    return any((path / name).exists() for name in (CHECKPOINT, CONFIG, METRICS))


def release_lock(lock: Path, fd: int) -> None:
    """Remove the lock file (if it is still ours) and drop the flock: closing the last
    descriptor drops it, as the OS does when the process dies, however it dies."""
    try:
        if _same_file(lock, fd):
            lock.unlink(missing_ok=True)
    except OSError:
        pass
    finally:
        os.close(fd)


def _same_file(path: Path, fd: int) -> bool:
    try:
        a, b = os.stat(path, follow_symlinks=False), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _check_lock_path(lock: Path, run: Path) -> None:
    try:
        st = os.lstat(lock)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise RunError(f"{lock}: cannot read ({exc.strerror})", "check the permissions") from exc
    if not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else file_kind(st.st_mode)
        raise RunError(
            f"{lock}: is {kind}, not ppoqa's lock file",
            f"remove it (ppoqa keeps the lock of {run} there), or choose another --run-dir",
        )


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def lock_is_held(lock: Path) -> bool:
    """Whether a live process holds the flock of this lock file (a run still training)."""
    if not lock.is_file():
        return False
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def acquire_lock(run: Path, warn: Callable[[str], None] | None = None) -> int:
    """Take run/.lock: flock it (exactly one training wins) and write our pid into it (for the
    message a second training gets); a lock nobody holds (a killed training's) is taken over
    with a warning. Returns the lock's descriptor, for release_lock."""
    lock = run / LOCK
    for _ in range(5):
        _check_lock_path(lock, run)
        try:
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
            fd = os.open(lock, flags | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as exc:
            if exc.errno in (errno.EISDIR, errno.ELOOP, errno.ENXIO):
                _check_lock_path(lock, run)
            raise RunError(
                f"{run}: run directory is not writable ({exc.strerror})", "choose another --run-dir"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            who = f" (pid {pid})" if pid is not None else ""
            raise RunError(
                f"{run}: run directory is in use by another training{who}",
                "wait for it to finish or stop it; the lock goes with that process",
            ) from None
        except OSError as exc:
            os.close(fd)
            raise RunError(
                f"{lock}: cannot lock ({exc.strerror})", "use a local file system for runs"
            ) from exc
        if not _same_file(lock, fd):  # the holder removed it while we waited: lock again
            os.close(fd)
            continue
        pid = _read_pid(fd)
        if pid is not None and pid != os.getpid() and warn is not None:
            warn(f"{run}: taking over a stale lock left by pid {pid}, which no longer holds it")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise RunError(
                f"{run}: run directory is not writable ({exc.strerror})", "choose another --run-dir"
            ) from exc
        return fd
    raise RunError(f"{run}: could not lock the run directory", "try again")


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Tensors and plain values only; the payload is hashed so corruption is detected on load."""
    inner = io.BytesIO()
    torch.save(payload, inner)
    body = inner.getvalue()
    digest = hashlib.sha256(body).hexdigest()
    stored = torch.frombuffer(bytearray(body), dtype=torch.uint8)
    outer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, "sha256": digest, "payload": stored}, outer)
    atomic_write_bytes(path / CHECKPOINT, outer.getvalue())


def _torch_load(data: bytes, ckpt: Path) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        text = str(exc)
        if "Weights only load failed" in text or "Unsupported global" in text:
            raise RunError(
                f"{ckpt}: refused, the checkpoint contains pickled code or objects",
                "only load checkpoints written by ppoqa; nothing in it was run",
            ) from exc
        raise RunError(
            f"{ckpt}: checkpoint is truncated or corrupted",
            "retrain, or restore the file from a backup",
        ) from exc


def load_checkpoint(run: Path) -> dict[str, Any]:
    """Load with weights_only=True (pickled code is refused, never run): the payload given to
    save_checkpoint plus its format_version."""
    ckpt = run / CHECKPOINT
    if not ckpt.exists():
        raise RunError(
            f"{run}: no {CHECKPOINT} in this run directory",
            "it stopped before saving one, so there is nothing to resume or evaluate: run "
            "`ppoqa train` again with another --run-dir (or delete this folder), or pass "
            "--run to a finished run",
        )
    raw = read_regular(
        ckpt,
        "checkpoint",
        2_000_000_000,
        size_message=f"{ckpt}: checkpoint is larger than 2 GB",
        size_hint="not a ppoqa checkpoint",
    )
    not_ours = RunError(
        f"{ckpt}: not a ppoqa checkpoint", "pass a run directory made by `ppoqa train`"
    )
    if not raw:
        raise RunError(f"{ckpt}: checkpoint is empty", "retrain, or restore it from a backup")
    if not raw.startswith(b"PK\x03\x04"):  # torch.save's zip format; anything else is not ours
        raise RunError(
            f"{ckpt}: not a ppoqa checkpoint (not a torch zip file)",
            "pass a run directory made by `ppoqa train`",
        )
    outer = _torch_load(raw, ckpt)
    version = outer.get("format_version") if isinstance(outer, dict) else None
    if isinstance(version, bool) or not isinstance(version, int):
        raise not_ours
    if version != FORMAT_VERSION:
        newer = version > FORMAT_VERSION
        raise RunError(
            f"{ckpt}: checkpoint format {version} is "
            f"{'newer than this ppoqa understands' if newer else 'older than this ppoqa reads'}"
            f" ({FORMAT_VERSION})",
            "upgrade ppoqa to read it" if newer else "retrain the run with this version",
        )
    body, digest = outer.get("payload"), outer.get("sha256")
    if not isinstance(body, torch.Tensor) or body.dtype != torch.uint8 or body.dim() != 1:
        raise not_ours
    data = body.numpy().tobytes()
    if not isinstance(digest, str) or hashlib.sha256(data).hexdigest() != digest:
        raise RunError(
            f"{ckpt}: checkpoint is corrupted (checksum mismatch)",
            "retrain, or restore the file from a backup",
        )
    payload = _torch_load(data, ckpt)
    if not isinstance(payload, dict):
        raise not_ours
    return {**payload, "format_version": version}


def append_metrics(run: Path, record: dict[str, Any]) -> None:
    try:
        with open(run / METRICS, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
    except OSError as exc:
        raise RunError(
            f"{run / METRICS}: cannot write ({exc.strerror})",
            "free disk space or check permissions",
        ) from exc


def truncate_metrics(run: Path, iteration: int) -> None:
    """Keep the records up to `iteration` (the checkpoint's), for a resume; drops a half line."""
    path = run / METRICS
    if not path.exists():
        return
    raw = read_regular(path, "metrics file", MAX_METRICS_BYTES)
    kept = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = record.get("iteration") if isinstance(record, dict) else None
        if isinstance(step, int) and step <= iteration:
            kept.append(line)
    atomic_write_text(path, "".join(k + "\n" for k in kept))


MAX_METRICS_BYTES = 500_000_000
# Metrics that `plot`, `doctor` and the sweep read as numbers: a line giving one of them as
# anything else is named, rather than failing deep inside matplotlib.
NUMERIC_METRICS = (
    "episodes", "steps", "global_step", "progress", "mean_reward", "train_accuracy",
    "eval_accuracy", "mean_length", "loss", "policy_loss", "value_loss", "entropy", "approx_kl",
    "clipfrac", "learning_rate", "explained_variance", "episodic_return", "episodic_length",
    "sps", "wall_seconds", "kl", "kl_coef", "token_accuracy",
)  # fmt: skip


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metrics_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"is a JSON {type(record).__name__}, not an object"
    step = record.get("iteration")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"'iteration' must be a whole number >= 0, got {json.dumps(step)[:40]}"
    for key in NUMERIC_METRICS:
        value = record.get(key)
        if value is not None and not _is_number(value):
            return f"'{key}' must be a number, got {json.dumps(value)[:40]}"
    losses = record.get("epoch_losses")
    if losses is not None and not (isinstance(losses, list) and all(_is_number(v) for v in losses)):
        return "'epoch_losses' must be a list of numbers"
    return None


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """Every record of metrics.jsonl, each checked to have the shape ppoqa writes."""
    path = run / METRICS
    if not path.exists():
        raise RunError(f"{run}: no {METRICS} in this run directory", "train a run first")
    raw = read_regular(path, "metrics file", MAX_METRICS_BYTES)
    records = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RunError(f"{path}: cannot read as UTF-8 text", "the file was edited or cut") from exc
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise RunError(f"{path}: line {i} is not JSON", "the file was edited or cut") from exc
        problem = _metrics_problem(record)
        if problem is not None:
            raise RunError(
                f"{path}: line {i} {problem}",
                "the file was edited; ppoqa writes one JSON object per iteration",
            )
        records.append(record)
    return records


def write_yaml(path: Path, data: Any) -> None:
    """Write YAML; a big dataset copy through libyaml's emitter (PyYAML's own takes minutes for
    300k pairs)."""
    big = isinstance(data, dict) and len(data.get("pairs") or ()) > 5000
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper) if big else yaml.SafeDumper
    text = yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True)
    atomic_write_text(path, text)


def run_env(run: Path) -> str:
    """The one place a run's kind is decided: its env (runs from before config.yaml named it
    are text QA)."""
    return str(read_config(run).get("env", "text-qa"))


def read_config(run: Path) -> dict[str, Any]:
    path = run / CONFIG
    if not path.exists():
        raise RunError(
            f"{run}: not a ppoqa run directory (no {CONFIG})",
            "pass a run directory made by `ppoqa train`",
        )
    raw = read_regular(path, "config file", 1_000_000)
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        raise RunError(
            f"{path}: unreadable (not UTF-8 YAML)", "pass a run directory made by `ppoqa train`"
        ) from exc
    if not isinstance(data, dict):
        raise RunError(
            f"{path}: not a config mapping", "pass a run directory made by `ppoqa train`"
        )
    return data


def find_run(run: str | Path | None, root: Path = DEFAULT_RUNS) -> Path:
    """The given run directory, or the newest finished run under ./runs/."""
    if run is not None:
        p = Path(run)
        if not p.is_dir():
            what = "is a file, not a run directory" if p.exists() else "run directory not found"
            raise RunError(f"{p}: {what}", "pass a folder written by `ppoqa train`")
        return p
    candidates = [c.parent for c in root.glob(f"*/{CHECKPOINT}")] if root.is_dir() else []
    # A run still training (live lock) is not "finished": skip it unless named with --run.
    candidates = [c for c in candidates if not lock_is_held(c / LOCK)]
    if not candidates:
        raise RunError(
            f"no trained run found under {root}/", "run `ppoqa train` first, or pass --run DIR"
        )
    return max(candidates, key=lambda d: ((d / CHECKPOINT).stat().st_mtime, d.name))
