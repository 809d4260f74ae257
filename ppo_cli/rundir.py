"""The run directory: the contract between `train` and `eval`, `ask`, `plot`, `explain-gae`.

    runs/<stamp>-<env>-s<seed>/
      config.yaml      resolved settings
      metrics.jsonl    one JSON object per iteration
      dataset.yaml     text QA: the pairs trained on (so `ask`/`eval` need nothing else)
      vocab.json       text QA: the token list
      checkpoint.pt    tensors and plain values only (torch.load(weights_only=True))

Every file is written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
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
FORMAT_VERSION = 1
DEFAULT_RUNS = Path("runs")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunError(
            f"{path}: run directory is not writable ({exc.strerror})",
            "choose another --run-dir",
        ) from exc
    return path


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **payload}, buf)
    atomic_write_bytes(path / CHECKPOINT, buf.getvalue())


def load_checkpoint(run: Path) -> dict[str, Any]:
    """Load with weights_only=True: pickled code in a checkpoint is refused, never run."""
    ckpt = run / CHECKPOINT
    if not ckpt.is_file():
        raise RunError(
            f"{run}: no {CHECKPOINT} in this run directory",
            "train one first with `ppoqa train`, or pass --run to a finished run",
        )
    try:
        data = torch.load(ckpt, map_location="cpu", weights_only=True)
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
    if not isinstance(data, dict) or "format_version" not in data:
        raise RunError(
            f"{ckpt}: not a ppoqa checkpoint", "pass a run directory made by `ppoqa train`"
        )
    if data["format_version"] > FORMAT_VERSION:
        raise RunError(
            f"{ckpt}: checkpoint format {data['format_version']} is newer than this ppoqa "
            f"understands ({FORMAT_VERSION})",
            "upgrade ppoqa",
        )
    return data


def append_metrics(run: Path, record: dict[str, Any]) -> None:
    with open(run / METRICS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def read_metrics(run: Path) -> list[dict[str, Any]]:
    path = run / METRICS
    if not path.is_file():
        raise RunError(f"{run}: no {METRICS} in this run directory", "train a run first")
    records = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise RunError(f"{path}: line {i} is not JSON", "the file was edited or cut") from exc
    return records


def write_yaml(path: Path, data: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def read_config(run: Path) -> dict[str, Any]:
    path = run / CONFIG
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RunError(
            f"{path}: missing or unreadable", "pass a run directory made by `ppoqa train`"
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
            raise RunError(
                f"{p}: run directory not found", "pass a folder written by `ppoqa train`"
            )
        return p
    candidates = [c.parent for c in root.glob(f"*/{CHECKPOINT}")] if root.is_dir() else []
    if not candidates:
        raise RunError(
            f"no trained run found under {root}/",
            "run `ppoqa train` first, or pass --run DIR",
        )
    return max(candidates, key=lambda d: ((d / CHECKPOINT).stat().st_mtime, d.name))
