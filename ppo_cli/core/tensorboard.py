"""`--tensorboard`: the per-iteration metrics records as TensorBoard scalars, CleanRL's names.

Fed only by the plain metrics records, so it serves every kind of run. TensorBoard is an
optional extra; without it `--tensorboard` stops with one clear line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ppo_cli.config import Config
from ppo_cli.errors import ConfigError

# metrics-record key -> TensorBoard tag. CleanRL's ppo.py names first, then text-QA extras,
# then TRL's names (its trainers log them under train/), for the estimators' comparison.
_LOSSES = ("value_loss", "policy_loss", "entropy", "old_approx_kl", "approx_kl", "clipfrac")
_TRL = ("reward", "reward_std", "frac_reward_zero_std", "kl", "clip_ratio")
TAGS: dict[str, str] = {
    **{k: f"charts/{k}" for k in ("episodic_return", "episodic_length", "learning_rate")},
    "sps": "charts/SPS",
    **{k: f"losses/{k}" for k in (*_LOSSES, "explained_variance", "loss")},
    **{k: f"charts/{k}" for k in ("mean_reward", "train_accuracy", "eval_accuracy", "mean_length")},
    "active_accuracy": "charts/curriculum_active_accuracy",
    "curriculum_stage": "charts/curriculum_stage",
    **{k: f"train/{k}" for k in (*_TRL, "completions/mean_length")},
}


def global_step(record: dict[str, Any]) -> int:
    """Environment steps so far: gymnasium's global_step, text QA's generated tokens."""
    keys = ("global_step", "steps", "iteration")
    return next((int(record[k]) for k in keys if isinstance(record.get(k), (int, float))), 0)


def scalars_from_record(record: dict[str, Any]) -> dict[str, float]:
    """TensorBoard tag -> value for one metrics record; absent or non-numeric keys are skipped.
    Text QA stands in mean_reward and mean_length for the episode charts, and tokens/s for SPS."""
    values: dict[str, float] = {}
    for key, tag in TAGS.items():
        v = record.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            values[tag] = float(v)
    for tag, stand_in in (("episodic_return", "mean_reward"), ("episodic_length", "mean_length")):
        if f"charts/{tag}" not in values and f"charts/{stand_in}" in values:
            values[f"charts/{tag}"] = values[f"charts/{stand_in}"]
    wall = record.get("wall_seconds")
    if "charts/SPS" not in values and isinstance(wall, (int, float)) and wall > 0:
        values["charts/SPS"] = global_step(record) / wall
    return values


def summary_writer_class() -> Any:
    """torch's SummaryWriter, or a ConfigError naming the missing optional extra."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ConfigError(
            "--tensorboard needs the 'tensorboard' package, which is not installed",
            "pip install 'ppoqa[tensorboard]', or pip install tensorboard",
        ) from exc
    return SummaryWriter


class TensorBoardCallbacks:
    """Writes each metrics record as scalars; not a Callbacks subclass, so every hook it does
    not define falls through to `inner` via __getattr__."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._writer_cls = summary_writer_class()  # fail before any training time is spent
        self.writer: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def on_start(self, cfg: Config, run_dir: Path, total: int) -> None:
        self.writer = self._writer_cls(log_dir=str(Path(run_dir) / "tensorboard"))
        rows = "\n".join(f"|{k}|{v}|" for k, v in cfg.to_dict().items())
        self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{rows}")
        self.inner.on_start(cfg, run_dir, total)

    def on_iteration(self, record: dict[str, Any]) -> None:
        if self.writer is not None:
            step = global_step(record)
            for tag, value in scalars_from_record(record).items():
                self.writer.add_scalar(tag, value, step)
            self.writer.flush()  # a crash or Ctrl-C still leaves every finished iteration
        self.inner.on_iteration(record)

    def close(self) -> None:
        """Close the event file (the trainer calls this; `inner` is closed by its owner)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
