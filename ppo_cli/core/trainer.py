"""train(): the one PPO loop, for every kind of run, reading top to bottom like CleanRL's ppo.py.

Where text QA and gymnasium differ lives in their wings (ppo_cli.kinds); the loop reports
through plain callbacks, so tests and library users need no terminal."""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ppo_cli.config import Config, config_to_yaml, validate
from ppo_cli.core.optim import PlainAdam
from ppo_cli.core.ppo import check_finite_metrics, check_finite_parameters, ppo_update
from ppo_cli.core.rundir import (
    CONFIG,
    METRICS,
    append_metrics,
    atomic_write_text,
    new_run_dir,
    prepare_run_dir,
    truncate_metrics,
)
from ppo_cli.core.session import (
    LoopState,
    QAResult,
    TrainingSession,
    load_resume_checkpoint,
    restore_training_state,
    training_state,
)
from ppo_cli.core.trace import start_trace

if TYPE_CHECKING:
    from ppo_cli.kinds import Task
from ppo_cli.errors import RunError, TrainingError, UsageError, warn_stderr
from ppo_cli.kinds import make_task


@dataclass
class TrainResult:
    """The walkthrough's "training math" for the run that really happened."""

    run_dir: Path
    env: str
    iterations: int
    episodes: int
    steps: int
    epochs: int
    gradient_updates: int
    wall_seconds: float
    final_accuracy: float | None = None
    final_results: list[QAResult] = field(default_factory=list)
    mean_return: float | None = None
    stopped_early: bool = False
    stop_reason: str | None = None  # text QA: solved | stalled | budget (ppo_cli.textqa.budget)
    stop_message: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "final_results"}
        d["run_dir"] = str(self.run_dir)
        d["wall_seconds"] = round(self.wall_seconds, 3)
        d["final_results"] = [r.to_dict() for r in self.final_results]
        return d


class Callbacks:
    """Hooks the CLI overrides; every method gets plain data."""

    def on_start(self, cfg: Config, run_dir: Path, total: int) -> None: ...
    def on_iteration(self, record: dict[str, Any]) -> None: ...
    def on_eval(self, iteration: int, results: list[QAResult]) -> None: ...
    def wants_trace(self, iteration: int, total: int) -> bool:
        """Whether to record a trace of this iteration's update (see ppo_cli.core.trace)."""
        return False

    def on_trace(self, record: dict[str, Any]) -> None: ...

    def on_warning(self, message: str) -> None:
        warn_stderr(message)

    def on_progress(self, message: str) -> None:
        """A line about slow preparation (reading a big dataset), so a wait is explained."""

    def wants_plan(self) -> bool:
        """Whether to time a rehearsal and report the run's expected cost (on_plan)."""
        return False

    def on_plan(self, plan: Any) -> None:
        """The expected cost of a new run, before it starts (text QA: textqa.budget.Plan)."""


def seed_everything(seed: int, threads: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def build_optimizer(policy: torch.nn.Module, lr: float, fused: bool) -> Any:
    """Adam with CleanRL's eps (ppo_cli.core.optim.PlainAdam: torch's update without torch.optim's
    slow import); fused (one kernel per step) for gymnasium, the plain loop for text QA."""
    return PlainAdam(policy.parameters(), lr=lr, eps=1e-5, fused=fused)


def train(
    cfg: Config,
    run_dir: Path | None = None,
    callbacks: Callbacks | None = None,
    *,
    resume: bool = False,
) -> TrainResult:
    """Train on cfg.env (text QA or a gymnasium id) and write a run directory.

    resume=True continues the run in run_dir from its checkpoint (cfg: resume_config())."""
    validate(cfg)
    if resume and run_dir is None:
        raise UsageError("resuming needs the run directory", "ppoqa train --resume DIR")
    cb: Callbacks = callbacks or Callbacks()
    if cfg.tensorboard:  # a writer wrapped around the caller's callbacks
        from ppo_cli.core.tensorboard import TensorBoardCallbacks

        cb = TensorBoardCallbacks(cb)  # type: ignore[assignment]
    task = make_task(cfg, run_dir if resume else None, getattr(cb, "on_progress", None))
    try:
        # on the wing's final Config, task.cfg (what cfg left unset, filled in from the data)
        return run_task(task, run_dir, cb, resume)
    finally:
        task.close()
        if cfg.tensorboard:
            cb.close()  # type: ignore[attr-defined]


def run_task(
    task: Task, run_dir: Path | None, cb: Callbacks, resume: bool, update: Any = None
) -> TrainResult:
    """The loop over one task; `update` is PPO's step unless the task brings its own
    (supervised fine-tuning, ppo_cli.textqa.sft: one teacher-forced epoch per iteration)."""
    cfg, update = task.cfg, update or ppo_update  # looked up per run: tests replace ppo_update
    seed_everything(cfg.seed, cfg.threads)
    policy = task.build()  # may still refuse the settings: no folder exists yet
    optimizer = build_optimizer(policy, cfg.learning_rate, task.fused_adam)
    settings = task.update_settings()
    run_dir = prepare_run_dir(run_dir or new_run_dir(cfg.env, cfg.seed))
    with TrainingSession(run_dir, cfg.save_every, resume, cb.on_warning) as session:
        state, ckpt = LoopState(), None
        if resume:
            kind = getattr(task, "kind", None)  # sft names its own; PPO checkpoints carry none
            ckpt = load_resume_checkpoint(run_dir, task.fingerprint, task.training_spec(), kind)
            counters = restore_training_state(ckpt, policy, optimizer, run_dir)
            state = LoopState(**{k: counters[k] for k in asdict(LoopState()).keys() & counters})
            if state.iteration >= task.total:
                raise RunError(
                    f"{run_dir}: the run already finished all {state.iteration} iterations",
                    "its learning rate anneals over a fixed length; start a new run"
                    if cfg.anneal_lr
                    else f"to train further, pass {task.longer(state)} or more",
                )
        task.prepare_run(run_dir, state, ckpt, cb.on_warning)  # may refuse a finished run
        if resume:
            truncate_metrics(run_dir, state.iteration)
        else:
            (run_dir / METRICS).unlink(missing_ok=True)
        atomic_write_text(run_dir / CONFIG, config_to_yaml(cfg))
        session.start(
            state.iteration,
            task.total,
            lambda: training_state(policy, optimizer, asdict(state), task.checkpoint_extras(state)),
        )
        plan = task.plan(policy) if not resume and cb.wants_plan() else None
        if plan is not None:
            cb.on_plan(plan)
        cb.on_start(cfg, run_dir, task.total)
        task.start(state)

        start = time.perf_counter() - state.wall_seconds
        for iteration in range(state.iteration + 1, task.total + 1):
            session.begin()
            if cfg.anneal_lr:
                frac = 1.0 - (iteration - 1) / task.total
                optimizer.param_groups[0]["lr"] = frac * cfg.learning_rate
            try:
                rollout, batch, deltas = task.collect(policy)  # GAE inside to_batch
                recorder = start_trace(
                    cb, iteration, task.total, settings.clip_coef, task.action_label,
                    task.may_stop_early,
                )  # fmt: skip
                hook = recorder.on_minibatch if recorder else None
                stats = update(policy, optimizer, batch, settings, hook)
            except TrainingError as exc:  # a non-finite loss, or a --reward-fn that failed
                raise TrainingError(f"iteration {iteration}: {exc.message}", exc.hint) from exc
            check_finite_parameters(policy, iteration)

            lr = optimizer.param_groups[0]["lr"]
            record = task.record(iteration, state, rollout, batch, stats, lr)  # type: ignore[arg-type]
            results, reached = task.evaluate(policy, iteration, record, state)
            if results is not None:
                cb.on_eval(iteration, results)
            record["wall_seconds"] = round(time.perf_counter() - start, 4)
            check_finite_metrics(record, ("loss", "mean_reward", "value_loss"), iteration)
            append_metrics(run_dir, record)

            state.iteration = iteration
            state.episodes += rollout.num_episodes
            state.steps += rollout.num_steps
            state.epochs += stats["epochs"]
            state.gradient_updates += stats["gradient_updates"]
            state.wall_seconds = record["wall_seconds"]
            state.stopped_early = bool(reached and iteration < task.total)
            session.end(iteration)
            cb.on_iteration(record)
            if recorder is not None and (recorder.wanted or reached):
                cb.on_trace(task.trace(iteration, rollout, batch, deltas, recorder))  # type: ignore[arg-type]
            if reached:
                break
            session.stop_if_requested()

        wall = time.perf_counter() - start
        state.finished = True
        state.wall_seconds = wall
        session.save(state.iteration)
    extras = task.summary(policy, state)  # first: it may still fill in state
    counts = ("episodes", "steps", "epochs", "gradient_updates", "stopped_early", "stop_reason")
    return TrainResult(
        run_dir=run_dir,
        env=cfg.env,
        iterations=state.iteration,
        wall_seconds=wall,
        final_accuracy=state.accuracy,
        final_results=[QAResult(**r) for r in state.results],
        stop_message=state.stop_message,
        **{k: getattr(state, k) for k in counts},
        **extras,
    )
