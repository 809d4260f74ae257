"""Saving and restoring a training run: RNG states, optimizer, counters, Ctrl-C and the lock.

The session never writes a state from the middle of an iteration or with NaN/Inf weights, so
the checkpoint on disk is always the last good one; everything stored is a tensor or a plain
value, so torch.load(weights_only=True) reads it."""

from __future__ import annotations

import contextlib
import random
import shlex
import signal
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import numpy as np
import torch
from torch import nn

from ppo_cli import usercode
from ppo_cli.config import Config, resolve
from ppo_cli.core.rundir import (
    CONFIG,
    LOCK,
    acquire_lock,
    holds_run,
    load_checkpoint,
    read_config,
    release_lock,
    save_checkpoint,
)
from ppo_cli.errors import RunError, TrainingError, TrainingInterrupted, UsageError, warn_stderr

# Settings that may differ when resuming: they change how long or where a run trains, not what
# it learns from. Everything else would silently make the resumed run a different experiment.
RESUME_MAY_CHANGE = (
    "iterations", "timesteps", "target_accuracy", "save_every", "threads", "tensorboard",
)  # fmt: skip


@dataclass
class QAResult:
    """One greedy answer to one question of a text-QA evaluation."""

    question: str
    target: str
    answer: str
    reward: float
    correct: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Why a run ended: it reached its target, stopped gaining (text QA), or used its budget.
SOLVED, STALLED, BUDGET = "solved", "stalled", "budget"


@dataclass
class LoopState:
    """Everything the training loop carries from one iteration to the next (besides the
    policy, the optimizer and the RNGs): what a checkpoint's counters hold to resume exactly."""

    iteration: int = 0
    episodes: int = 0
    steps: int = 0  # generated tokens (text QA) or environment steps (gymnasium: global_step)
    epochs: int = 0
    gradient_updates: int = 0
    wall_seconds: float = 0.0
    accuracy: float | None = None  # text QA: of the last greedy evaluation
    results: list[dict[str, Any]] = field(default_factory=list)  # its QAResult dicts
    stopped_early: bool = False
    finished: bool = False
    curriculum_stage: int = 0  # --curriculum: index of the hardest active level
    kl_coef: float | None = None  # RLHF: the KL coefficient in force (adaptive with kl_target)
    stop_reason: str | None = None  # SOLVED | STALLED (text QA) | BUDGET, or None
    stop_message: str = ""
    best_accuracy: float = -1.0  # text QA: the stall rule's memory (budget.StallDetector)
    best_iteration: int = 0
    progress_accuracy: float = -1.0  # the stall rule's last progress (budget.StallDetector)
    progress_iteration: int = 0
    probe_episodes: int = 0  # text QA: exploration probes run (ppo_cli.textqa.answer_memory)


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and `random` global generator states, as tensors/ints."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": int(version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss_next"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def training_state(
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    counters: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A checkpoint payload that both answers questions and resumes training exactly; extra adds
    the loop's own plain values."""
    return {
        "policy_spec": policy.spec(),  # type: ignore[operator]
        "policy": policy.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": capture_rng_state(),
        "counters": dict(counters),
        "iteration": int(counters["iteration"]),
        **(extra or {}),
    }


def restore_training_state(
    ckpt: dict[str, Any], policy: nn.Module, optimizer: torch.optim.Optimizer, where: Path
) -> dict[str, Any]:
    """Load weights, optimizer and RNG states into a policy and optimizer built as a new run would
    build them (building consumes random numbers, so the RNG state goes back last); returns the
    checkpoint's counters."""
    missing = [k for k in ("policy", "optimizer", "rng", "counters") if k not in ckpt]
    if missing:
        raise RunError(
            f"{where}: checkpoint cannot resume training (no {', '.join(missing)})",
            "it was written by another tool or an older ppoqa; start a new run",
        )
    try:
        policy.load_state_dict(ckpt["policy"])
        optimizer.load_state_dict(ckpt["optimizer"])
        restore_rng_state(ckpt["rng"])
        counters = dict(ckpt["counters"])
        int(counters["iteration"])
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError, IndexError) as exc:
        raise RunError(
            f"{where}: checkpoint does not fit this run's network or settings "
            f"({type(exc).__name__})",
            "resume only with the run's own files; start a new run otherwise",
        ) from exc
    return counters


def resume_command(run_dir: Path) -> str:
    return f"ppoqa train --resume {shlex.quote(str(run_dir))}"


def resume_config(run_dir: Path, overrides: dict[str, Any]) -> Config:
    """The run's own config.yaml, plus only the overrides that keep the run's meaning."""
    source = str(run_dir / CONFIG)
    own = read_config(run_dir)
    cfg = resolve(base=own, source=source)
    wanted = resolve(overrides, base=own, source=source)  # compared after coercion
    for name in overrides:
        key = name.replace("-", "_")
        old, new = getattr(cfg, key), getattr(wanted, key)
        if key not in RESUME_MAY_CHANGE and old != new:
            flag = f"--{key.replace('_', '-')}"
            raise UsageError(
                f"{flag} cannot change when resuming: the run was trained with {key}={old!r}",
                f"drop {flag}, or start a new run: ppoqa train --config {shlex.quote(source)} "
                f"{flag} ...",
            )
    for key in ("iterations", "timesteps"):
        if cfg.anneal_lr and getattr(wanted, key) != getattr(cfg, key):
            raise UsageError(
                f"--{key} cannot change when resuming a run with --anneal-lr: the "
                "learning-rate schedule depends on it",
                f"start a new run with the {key} you want",
            )
    return wanted


class TrainingSession:
    """One training loop's run-directory duties: lock, Ctrl-C, and checkpoints (the loop calls
    start, then begin/end around each iteration, stop_if_requested, and save).

    The first Ctrl-C only sets a flag; the loop stops at the next iteration boundary. A second
    Ctrl-C (or a KeyboardInterrupt from anywhere) stops at once: if it comes at a boundary the
    state is saved, otherwise the last checkpoint on disk stays as it is. SIGTERM (`timeout`,
    `docker stop`, SLURM) and SIGHUP (the terminal closed) are handled the same way, and the
    process then exits 128 + the signal's number, as a shell expects."""

    def __init__(
        self,
        run_dir: Path,
        save_every: int,
        resume: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.save_every = save_every
        self.resume = resume
        self.warn = warn or warn_stderr
        self.stop_requested = False
        self.snapshot: Callable[[], dict[str, Any]] | None = None
        self.iteration = 0  # last completed iteration
        self.consistent = False  # True between end() and the next begin()
        self.saved_iteration: int | None = None
        self._lock_fd: int | None = None
        self._old_handlers: dict[int, Any] = {}
        self.signal: int | None = None  # the signal that asked us to stop
        self.total: int | None = None  # the run's iterations, once the loop knows them

    # context manager: lock + the stop signals' flag
    def __enter__(self) -> TrainingSession:
        self._lock_fd = acquire_lock(self.run_dir, self.warn)
        try:
            if not self.resume and holds_run(self.run_dir):
                raise RunError(
                    f"{self.run_dir}: already holds a run",
                    f"continue it with `{resume_command(self.run_dir)}`, "
                    "or choose another --run-dir",
                )
        except BaseException:
            release_lock(self.run_dir / LOCK, self._lock_fd)
            raise
        if threading.current_thread() is threading.main_thread():
            for name in ("SIGINT", "SIGTERM", "SIGHUP"):
                signum = getattr(signal, name, None)
                if signum is not None:
                    self._old_handlers[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._restore_handler()
        usercode.clear_stop()
        try:
            if isinstance(exc, usercode.UserCodeStopped):
                done = self._interrupted()
                done.message += (
                    f" ({exc.what} was still running {usercode.STOP_GRACE:g} s after the "
                    "signal, so it was stopped there)"
                )
                raise done from None
            if isinstance(exc, KeyboardInterrupt):
                raise self._interrupted() from None
            # The reader of our output went away (`ppoqa train | head -1`): keep what was
            # trained; the command then exits 0 quietly (cli.common's broken-pipe rule).
            gone = isinstance(exc, BrokenPipeError) and self.consistent
            if gone and self.saved_iteration != self.iteration:
                with contextlib.suppress(KeyboardInterrupt, RunError):
                    self.save(self.iteration)
            if isinstance(exc, TrainingError) and self.saved_iteration is not None:
                raise TrainingError(
                    exc.message,
                    f"{exc.hint}; the last good checkpoint (iteration {self.saved_iteration}) "
                    f"is kept in {self.run_dir}",
                ) from exc
        finally:
            if self._lock_fd is not None:
                release_lock(self.run_dir / LOCK, self._lock_fd)
                self._lock_fd = None

    def _restore_handler(self) -> None:
        for signum, old in self._old_handlers.items():
            signal.signal(signum, old)
        self._old_handlers = {}

    def _signal_name(self) -> str:
        return (
            "Ctrl-C" if self.signal in (None, signal.SIGINT) else signal.Signals(self.signal).name
        )

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True
        self.signal = signum
        usercode.request_stop()  # the user's code, if running now, gets a few seconds
        name = self._signal_name()
        again = "Ctrl-C again" if signum == signal.SIGINT else "again"
        with contextlib.suppress(OSError, ValueError):  # SIGHUP: the terminal may be gone
            self.warn(f"{name}: saving and stopping after this iteration ({again}: stop now)")

    def _interrupted(self) -> TrainingInterrupted:
        """Save if the state is good, and describe what the user can resume from; the exit
        code is 130 for Ctrl-C, 128 + the signal's number for SIGTERM and SIGHUP."""
        self._restore_handler()  # a further Ctrl-C during the save aborts it cleanly
        if self.consistent and self.saved_iteration != self.iteration:
            with contextlib.suppress(KeyboardInterrupt, RunError):
                self.save(self.iteration)
        run, it, saved = self.run_dir, self.iteration, self.saved_iteration
        hint = f"resume with `{resume_command(run)}`"
        if saved is None and self.resume:
            message = f"training interrupted while resuming; the checkpoint in {run} is unchanged"
        elif saved is None:
            message = (
                f"training interrupted before its first checkpoint; {run} holds nothing to resume"
            )
            hint = "start the training again"
        elif saved == it and self.consistent and self.total is not None and it >= self.total:
            # nothing is left to resume: say so instead of pointing at --resume
            message = (
                f"training interrupted after its last iteration ({it}); the trained model and "
                f"metrics are in {run}"
            )
            hint = f"the run is complete: evaluate it with `ppoqa eval --run {run}`"
        elif saved == it and self.consistent:
            message = (
                f"training interrupted after iteration {it}; checkpoint and metrics are in {run}"
            )
        else:
            message = (
                f"training interrupted during iteration {it + 1}; the checkpoint of iteration "
                f"{saved} and metrics are in {run}"
            )
        done = TrainingInterrupted(message, hint)
        if self.signal is not None and self.signal != signal.SIGINT:
            done.message = f"{self._signal_name()}: {message}"
            done.exit_code = 128 + int(self.signal)
        done.saved_iteration = saved
        return done

    # the loop's calls
    def start(self, iteration: int, total: int, snapshot: Callable[[], dict[str, Any]]) -> None:
        """The state after setup (or after restoring) is a good state; a new run saves it so
        that it can be resumed even if stopped during its first iteration. snapshot() gives the
        checkpoint payload of the loop's state whenever one is saved."""
        self.iteration, self.total, self.snapshot = iteration, total, snapshot
        self.consistent = True
        if self.resume:
            self.saved_iteration = iteration
        else:
            self.save(iteration)

    def begin(self) -> None:
        self.consistent = False

    def end(self, iteration: int) -> None:
        self.iteration = iteration
        self.consistent = True
        if self.save_every and iteration % self.save_every == 0:
            self.save(iteration)

    def stop_if_requested(self) -> None:
        if self.stop_requested:
            raise KeyboardInterrupt

    def save(self, iteration: int) -> None:
        assert self.snapshot is not None, "TrainingSession.start() comes first"
        save_checkpoint(self.run_dir, self.snapshot())
        self.saved_iteration = iteration


def load_resume_checkpoint(
    run_dir: Path,
    dataset_fingerprint: str | None,
    spec: dict[str, Any] | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """The run's checkpoint, checked to be of the resuming kind (None: PPO) and to belong to
    the run's dataset (text QA)."""
    ckpt = load_checkpoint(run_dir)
    if ckpt.get("kind") == "sft" and kind != "sft":
        counters = ckpt.get("counters") if isinstance(ckpt.get("counters"), dict) else {}
        quoted = shlex.quote(str(run_dir))
        raise RunError(
            f"{run_dir}: is a supervised (ppoqa sft) run, not a PPO run to resume",
            f"start PPO from it: ppoqa train --init-from {quoted}"
            if counters.get("finished")
            else f"it was interrupted: continue it with `ppoqa sft --resume {quoted}`",
        )
    if dataset_fingerprint is not None:
        check_dataset_fingerprint(ckpt, dataset_fingerprint, run_dir)
    # Another dataset setting or reward than the checkpoint learned on is refused (checkpoints
    # from before the spec was stored are checked on their pairs only).
    theirs = ckpt.get("training_spec")
    if spec is None or not isinstance(theirs, dict):
        return ckpt
    changed = [k for k in sorted(set(theirs) | set(spec)) if theirs.get(k) != spec.get(k)]
    if changed:
        what = ", ".join(
            f"{k} ({_short(theirs.get(k))} -> {_short(spec.get(k))})" for k in changed[:3]
        )
        raise RunError(
            f"{run_dir}: what the run learns from changed since its checkpoint: {what}",
            "restore the run's dataset.yaml and config.yaml, or start a new run with the new "
            "settings",
        )
    return ckpt


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 70 else text[:67] + "..."


def check_dataset_fingerprint(ckpt: dict[str, Any], fingerprint: str, run_dir: Path) -> None:
    theirs = ckpt.get("dataset_fingerprint")
    if theirs != fingerprint:
        raise RunError(
            f"{run_dir}: checkpoint was trained on another dataset than the run's dataset.yaml "
            f"(fingerprint {str(theirs)[:16]} vs {fingerprint})",
            "keep a run's files together; copy the whole run directory, not single files",
        )
