"""The run directory: the contract between `train` and `eval`, `ask`, `plot`, `explain-gae`.

    runs/<stamp>-<env>-s<seed>/
      config.yaml      resolved settings
      metrics.jsonl    one JSON object per iteration
      dataset.yaml     text QA: the pairs trained on (so `ask`/`eval` need nothing else)
      vocab.json       text QA: the token list
      checkpoint.pt    tensors and plain values only (torch.load(weights_only=True)), with a
                       format version and a SHA-256 of its payload
      .lock            while a training runs: its pid (one training per directory)

Every file is written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from ppo_cli.errors import RunError

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.yaml"
DATASET = "dataset.yaml"
VOCAB = "vocab.json"
LOCK = ".lock"
# 2: the payload is stored as its own torch file (bytes) next to its SHA-256, so a flipped byte
# anywhere is caught (torch does not check its zip CRCs on load).
FORMAT_VERSION = 2
MAX_CHECKPOINT_BYTES = 2_000_000_000
DEFAULT_RUNS = Path("runs")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target.

    A failure at any point (disk full, Ctrl-C) removes the temp file and leaves the previous
    version of `path` untouched.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise RunError(
            f"{path}: cannot write ({exc.strerror or exc})", "check the run directory's permissions"
        ) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise RunError(
                f"{path}: cannot write ({exc.strerror or exc})",
                "free disk space or check permissions; the previous version of the file is kept",
            ) from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def new_run_dir(env: str, seed: int, root: Path = DEFAULT_RUNS) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe_env = env.replace("/", "_")
    base = root / f"{stamp}-{safe_env}-s{seed}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def prepare_run_dir(path: Path) -> Path:
    """Create the folder and prove it is writable before any training time is spent."""
    if path.exists() and not path.is_dir():
        raise RunError(f"{path}: exists and is not a directory", "choose another --run-dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ENOTDIR:
            reason = "a parent of it is a file, not a directory"
        raise RunError(
            f"{path}: run directory is not writable ({reason})",
            "choose another --run-dir",
        ) from exc
    return path


def holds_run(path: Path) -> bool:
    """True when `path` already holds (part of) a training run."""
    return any((path / name).exists() for name in (CHECKPOINT, CONFIG, METRICS))


# --- lock: one training per run directory --------------------------------------------------


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _lock_owner(lock: Path) -> int | None:
    try:
        text = lock.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def acquire_lock(run: Path, warn: Callable[[str], None] | None = None) -> Path:
    """Create run/.lock holding our pid (O_EXCL: exactly one creator wins).

    A lock whose pid no longer exists (a killed training) is taken over with a warning.
    """
    lock = run / LOCK
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _lock_owner(lock)
            if pid is None:
                try:  # a lock being written right now has no pid yet: give it a moment
                    fresh = time.time() - lock.stat().st_mtime < 2.0
                except OSError:
                    continue
                if fresh:
                    time.sleep(0.2)
                    pid = _lock_owner(lock)
            if pid is not None and _pid_alive(pid):
                raise RunError(
                    f"{run}: run directory is in use by another training (pid {pid})",
                    f"wait for it to finish or stop it; if no such training runs, delete {lock}",
                ) from None
            if warn is not None:
                who = f"pid {pid}" if pid is not None else "an unknown process"
                warn(f"{run}: taking over a stale lock left by {who}, which is not running")
            lock.unlink(missing_ok=True)
            continue
        except OSError as exc:
            raise RunError(
                f"{run}: run directory is not writable ({exc.strerror})", "choose another --run-dir"
            ) from exc
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        return lock
    raise RunError(f"{run}: could not lock the run directory", "try again")


def release_lock(lock: Path) -> None:
    """Remove the lock if it is still ours."""
    if _lock_owner(lock) == os.getpid():
        lock.unlink(missing_ok=True)


# --- checkpoints -----------------------------------------------------------------------------


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Tensors and plain values only; the payload is hashed so corruption is detected on load."""
    inner = io.BytesIO()
    torch.save(payload, inner)
    body = inner.getvalue()
    outer = io.BytesIO()
    torch.save(
        {
            "format_version": FORMAT_VERSION,
            "sha256": hashlib.sha256(body).hexdigest(),
            "payload": torch.frombuffer(bytearray(body), dtype=torch.uint8),
        },
        outer,
    )
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
    """Load with weights_only=True: pickled code in a checkpoint is refused, never run.

    Returns the payload given to save_checkpoint plus its format_version.
    """
    ckpt = run / CHECKPOINT
    if not ckpt.is_file():
        raise RunError(
            f"{run}: no {CHECKPOINT} in this run directory",
            "train one first with `ppoqa train`, or pass --run to a finished run",
        )
    try:
        if ckpt.stat().st_size > MAX_CHECKPOINT_BYTES:
            raise RunError(f"{ckpt}: checkpoint is larger than 2 GB", "not a ppoqa checkpoint")
        raw = ckpt.read_bytes()
    except OSError as exc:
        raise RunError(f"{ckpt}: cannot read ({exc.strerror})", "check the permissions") from exc
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
    if not isinstance(outer, dict) or "format_version" not in outer:
        raise not_ours
    version = outer["format_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise not_ours
    if version > FORMAT_VERSION:
        raise RunError(
            f"{ckpt}: checkpoint format {version} is newer than this ppoqa "
            f"understands ({FORMAT_VERSION})",
            "upgrade ppoqa to read it",
        )
    if version < FORMAT_VERSION:
        raise RunError(
            f"{ckpt}: checkpoint format {version} is older than this ppoqa reads "
            f"({FORMAT_VERSION})",
            "retrain the run with this version",
        )
    body = outer.get("payload")
    digest = outer.get("sha256")
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


# --- metrics, config -------------------------------------------------------------------------


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
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = record.get("iteration") if isinstance(record, dict) else None
        if isinstance(step, int) and step <= iteration:
            kept.append(line)
    atomic_write_text(path, "".join(k + "\n" for k in kept))


def read_metrics(run: Path) -> list[dict[str, Any]]:
    path = run / METRICS
    if not path.is_file():
        raise RunError(f"{run}: no {METRICS} in this run directory", "train a run first")
    records = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: cannot read as UTF-8 text", "the file was edited or cut") from exc
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise RunError(f"{path}: line {i} is not JSON", "the file was edited or cut") from exc
    return records


def write_yaml(path: Path, data: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def run_env(run: Path) -> str:
    """The one place a run's kind is decided: its env, text-qa or a gymnasium id (runs from
    before config.yaml named it are text QA)."""
    return str(read_config(run).get("env", "text-qa"))


def read_config(run: Path) -> dict[str, Any]:
    path = run / CONFIG
    if not path.is_file():
        raise RunError(
            f"{run}: not a ppoqa run directory (no {CONFIG})",
            "pass a run directory made by `ppoqa train`",
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError, RecursionError) as exc:
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
        if p.exists() and not p.is_dir():
            raise RunError(
                f"{p}: is a file, not a run directory", "pass a folder written by `ppoqa train`"
            )
        if not p.is_dir():
            raise RunError(
                f"{p}: run directory not found", "pass a folder written by `ppoqa train`"
            )
        return p
    candidates = [c.parent for c in root.glob(f"*/{CHECKPOINT}")] if root.is_dir() else []
    # A run still training (live lock) is not "finished": skip it unless named with --run.
    candidates = [
        c
        for c in candidates
        if not ((c / LOCK).exists() and (pid := _lock_owner(c / LOCK)) and _pid_alive(pid))
    ]
    if not candidates:
        raise RunError(
            f"no trained run found under {root}/",
            "run `ppoqa train` first, or pass --run DIR",
        )
    return max(candidates, key=lambda d: ((d / CHECKPOINT).stat().st_mtime, d.name))
