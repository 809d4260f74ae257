"""The kinds of run: each name maps to the wing that implements the task seam train() drives
(build, collect, record, evaluate and stop, checkpoint extras). Wings import lazily, so
choosing a kind costs nothing until a run starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ppo_cli.config import TEXT_QA, Config

if TYPE_CHECKING:
    from ppo_cli.gym.task import GymTask
    from ppo_cli.textqa.task import TextQATask

    Task = TextQATask | GymTask

TEXT, GYM = TEXT_QA, "gym"


@dataclass(frozen=True)
class Kind:
    """What the code that reads a kind of run's records (sweeps, figures, tables) needs."""

    name: str
    curve: str  # the metrics key of its learning curve
    final: str  # the TrainResult field of its final evaluation
    noisy: bool  # episode returns are averaged over the last ones; accuracy is read as is
    steps: str  # what one of its steps is, in words
    x: str  # the metrics key its curves are drawn over
    # a sweep's `--objective`s it can score -> the metric each names; the first is the default
    objectives: dict[str, str]


KINDS = {
    TEXT: Kind(
        TEXT, "eval_accuracy", "final_accuracy", False, "steps (tokens)", "iteration",
        # auc: on a set every configuration solves, final accuracy ties at 1.0 and ranks
        # nothing, while how soon each got there still differs
        {"auc": "greedy_accuracy_auc", "final": "greedy_accuracy",
         "iterations-to-solve": "iterations_to_solve"},
    ),
    GYM: Kind(
        GYM, "episodic_return", "mean_return", True, "environment steps", "global_step",
        # final: evaluation returns rarely tie, and the curves are noisy
        {"final": "mean_eval_return", "auc": "episodic_return_auc"},
    ),
}  # fmt: skip


def kind_of(env: str) -> Kind:
    """The built-in text task by its own id; any other id is a gymnasium environment."""
    return KINDS[TEXT if env == TEXT_QA else GYM]


def make_task(
    cfg: Config, resume_dir: Path | None, progress: Callable[[str], None] | None = None
) -> Task:
    if kind_of(cfg.env).name == TEXT:
        from ppo_cli.textqa.task import TextQATask

        return TextQATask(cfg, resume_dir, progress)
    from ppo_cli.gym.task import GymTask

    return GymTask(cfg, resume_dir, progress)
