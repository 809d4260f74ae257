"""Supervised fine-tuning (SFT), the warm start every RLHF pipeline begins with: teacher-forced
cross-entropy on the gold answer tokens and <END>, in the rollout's episode layout so one
`policy.evaluate` call scores every position. The result is an ordinary text-QA run directory
(checkpoint `kind: sft`) that eval, ask and `train --init-from` read; PPO fits the value head.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ppo_cli.config import Config
from ppo_cli.core.ppo import masked_mean
from ppo_cli.core.rundir import DATASET, holds_run, load_checkpoint, new_run_dir
from ppo_cli.core.session import LoopState, resume_config
from ppo_cli.errors import ConfigError, RunError, TrainingError, TrainingInterrupted
from ppo_cli.textqa.data import END_ID, PAD_ID, QADataset, load_dataset, read_run_dataset
from ppo_cli.textqa.env import QATask
from ppo_cli.textqa.evaluate import QAResult, accuracy
from ppo_cli.textqa.task import TextRunTask

if TYPE_CHECKING:
    from ppo_cli.core.trainer import Callbacks
    from ppo_cli.textqa.policies import ActorCritic

SFT_CMD = "ppoqa sft"
RUN_KIND = "sft"  # the checkpoint's `kind`: train --resume refuses it, --init-from takes it
DEFAULT_EPOCHS = 60
DEFAULT_BATCH_SIZE = 8


def _resume_task(run_dir: Path) -> SFTTask:
    """An interrupted SFT run with its own config, dataset copy, epochs, batch size and eval
    interval (the loop checks that the copy is the one the checkpoint learned)."""
    if not run_dir.is_dir():
        raise RunError(
            f"--resume {run_dir}: run directory not found",
            "give the folder an interrupted `ppoqa sft` wrote (its --run-dir)",
        )
    ckpt = load_checkpoint(run_dir)
    if ckpt.get("kind") != RUN_KIND:
        raise RunError(
            f"{run_dir}: is not a supervised (ppoqa sft) run",
            f"resume a PPO run with `ppoqa train --resume {shlex.quote(str(run_dir))}`",
        )
    settings = ckpt.get("sft") if isinstance(ckpt.get("sft"), dict) else {}
    counters = ckpt.get("counters") if isinstance(ckpt.get("counters"), dict) else {}
    epochs = int(settings.get("epochs", DEFAULT_EPOCHS))
    # interrupted after its last epoch, it lacks only the final save: the weights are final
    if counters.get("finished") or int(counters.get("iteration", 0)) >= epochs:
        raise RunError(
            f"{run_dir}: the SFT run already finished all {epochs} epochs",
            f"start PPO from it: ppoqa train --init-from {shlex.quote(str(run_dir))}",
        )
    cfg = resume_config(run_dir, {})
    batch_size = int(settings.get("batch_size", DEFAULT_BATCH_SIZE))
    dataset = read_run_dataset(run_dir / DATASET, f"resume only a folder made by `{SFT_CMD}`")
    return SFTTask(cfg, dataset, epochs, batch_size, int(settings.get("eval_every", 1)))


@dataclass
class TeacherBatch:
    """Every question with its gold answer, in the rollout's layout: obs [Q, P + T - 1],
    actions [Q, T] (the gold ids, then <END>) and mask [Q, T] (a perfect episode's steps)."""

    obs: torch.Tensor
    actions: torch.Tensor
    mask: torch.Tensor

    @property
    def num_episodes(self) -> int:  # what an epoch counts in the loop's counters
        return int(self.obs.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.mask.sum())

    def __getitem__(self, idx: torch.Tensor) -> TeacherBatch:
        return TeacherBatch(self.obs[idx], self.actions[idx], self.mask[idx])


def teacher_batch(task: QATask) -> TeacherBatch:
    q, p, t_max = task.num_questions, task.prompt_len, task.max_steps
    a = task.targets.shape[1]  # the longest answer, < max_steps: there is room for <END>
    obs = torch.full((q, p + t_max - 1), PAD_ID, dtype=torch.long)
    obs[:, :p] = task.prompts
    obs[:, p : p + a] = task.targets  # <PAD> after each answer
    actions = torch.full((q, t_max), PAD_ID, dtype=torch.long)
    actions[:, :a] = task.targets
    actions[torch.arange(q), task.target_len] = END_ID
    return TeacherBatch(obs, actions, torch.arange(t_max) <= task.target_len.unsqueeze(1))


@dataclass
class SFTResult:
    run_dir: Path
    epochs: int
    gradient_updates: int
    wall_seconds: float
    final_loss: float
    final_accuracy: float
    final_results: list[QAResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "kind": RUN_KIND,
            "epochs": self.epochs,
            "gradient_updates": self.gradient_updates,
            "wall_seconds": round(self.wall_seconds, 3),
            "final_loss": self.final_loss,
            "final_accuracy": self.final_accuracy,
            "final_results": [r.to_dict() for r in self.final_results],
        }


class SFTTask(TextRunTask):
    """Teacher forcing as a task of the training loop (ppo_cli.core.trainer.run_task): one
    iteration is one epoch over every gold answer, with its own update step; no rollout."""

    kind = RUN_KIND
    may_stop_early = False
    action_label = None  # no traces: nothing is sampled

    def __init__(
        self, cfg: Config, dataset: QADataset, epochs: int, batch_size: int, eval_every: int
    ) -> None:
        self.cfg, self.dataset, self.total = cfg, dataset, epochs
        self.batch_size, self.eval_every = batch_size, eval_every
        self.fingerprint = dataset.fingerprint()
        self.last_loss = float("nan")

    def build(self) -> ActorCritic:
        policy = super().build()
        self.data = teacher_batch(self.qa)
        return policy

    def training_spec(self) -> None: ...  # the dataset copy is checked by its fingerprint

    def checkpoint_extras(self, state: LoopState) -> dict[str, Any]:
        sft = {"epochs": self.total, "batch_size": self.batch_size, "eval_every": self.eval_every}
        return {**super().checkpoint_extras(state), "kind": RUN_KIND, "sft": sft}

    def start(self, state: LoopState) -> None: ...

    def collect(self, policy: ActorCritic) -> tuple[TeacherBatch, TeacherBatch, None]:
        return self.data, self.data, None

    def update(
        self, policy: ActorCritic, optimizer: Any, data: TeacherBatch, settings: Any, hook: Any
    ) -> dict[str, Any]:
        """One epoch of cross-entropy on the gold tokens, in shuffled minibatches."""
        n = data.actions.shape[0]
        mb_size = min(self.batch_size, n)
        losses, token_hits, tokens = [], 0.0, 0.0
        perm = torch.randperm(n) if n > mb_size else torch.arange(n)
        for k in range(0, n, mb_size):
            mb = data[perm[k : k + mb_size]]
            logits, _ = policy.logits_values(mb.obs, mb.actions.shape[1])  # [B, T, A]
            logprobs = torch.log_softmax(logits, -1)
            gold = logprobs.gather(-1, mb.actions.unsqueeze(-1)).squeeze(-1)  # [B, T]
            loss = -masked_mean(gold, mb.mask)
            if not torch.isfinite(loss):
                raise TrainingError(f"SFT loss became {loss.item()}", "lower --learning-rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), self.cfg.max_grad_norm)
            optimizer.step()
            losses.append(float(loss.detach()))
            with torch.no_grad():
                token_hits += float(((logits.argmax(-1) == mb.actions) & mb.mask).sum())
                tokens += float(mb.mask.sum())
        self.last_loss = sum(losses) / len(losses)
        return {
            "epochs": 1,
            "gradient_updates": len(losses),
            "epoch_losses": losses,
            "token_accuracy": token_hits / max(tokens, 1.0),
        }

    def record(
        self, iteration: int, state: LoopState, rollout: Any, batch: Any, stats: Any, lr: float
    ) -> dict[str, Any]:
        return {
            "iteration": iteration,
            "phase": RUN_KIND,
            "loss": self.last_loss,
            "epoch_losses": stats["epoch_losses"],
            "token_accuracy": stats["token_accuracy"],
            "learning_rate": lr,
        }

    def evaluate(
        self, policy: ActorCritic, iteration: int, record: dict[str, Any], state: LoopState
    ) -> tuple[list[QAResult] | None, bool]:
        """Greedy answers to every question each eval_every epochs and after the last."""
        if iteration % self.eval_every and iteration != self.total:
            return None, False
        return self.greedy(policy, record, state), False

    def summary(self, policy: ActorCritic, state: LoopState) -> dict[str, Any]:
        return {}


def sft(
    cfg: Config,
    epochs: int = DEFAULT_EPOCHS,
    run_dir: Path | None = None,
    callbacks: Callbacks | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    eval_every: int = 1,
    *,
    resume: bool = False,
) -> SFTResult:
    """Teacher-forced cross-entropy on the answers (and <END>) of cfg.dataset (a resolved
    Config); writes a run. resume=True continues the interrupted SFT run in run_dir with its
    own settings, to the same weights as an uninterrupted run."""
    from ppo_cli.core.trainer import Callbacks, run_task

    if resume:
        if run_dir is None:
            raise ConfigError("resuming needs the run directory", "ppoqa sft --resume DIR")
        task = _resume_task(run_dir)
    else:
        dataset = load_dataset(cfg.dataset)
        run_dir = run_dir or new_run_dir(f"{cfg.env}-sft", cfg.seed)
        if holds_run(run_dir):
            raise RunError(
                f"{run_dir}: already holds a run",
                f"choose another --run-dir, or continue an interrupted one: {SFT_CMD} --resume "
                f"{shlex.quote(str(run_dir))}",
            )
        task = SFTTask(cfg, dataset, epochs, batch_size, eval_every)
    try:
        done = run_task(task, run_dir, callbacks or Callbacks(), resume, update=task.update)
    except TrainingInterrupted as exc:
        raise _interrupted(exc, run_dir, task.total) from exc
    return SFTResult(
        run_dir=done.run_dir,
        epochs=done.iterations,
        gradient_updates=done.gradient_updates,
        wall_seconds=done.wall_seconds,
        final_loss=task.last_loss,
        final_accuracy=accuracy(done.final_results),
        final_results=done.final_results,
    )


def _interrupted(exc: TrainingInterrupted, run_dir: Path, epochs: int) -> TrainingInterrupted:
    """The loop's message in SFT's words: epochs, and `ppoqa sft --resume`."""
    saved, quoted = exc.saved_iteration, shlex.quote(str(run_dir))
    if saved is None:
        stopped = TrainingInterrupted(
            f"ppoqa sft interrupted before its first checkpoint; {run_dir} holds nothing to resume",
            "run ppoqa sft again",
        )
    elif saved >= epochs:  # the loop's words: the run is complete
        return exc
    else:
        stopped = TrainingInterrupted(
            f"ppoqa sft interrupted; the checkpoint of epoch {saved} of {epochs} and the "
            f"metrics are in {run_dir}",
            f"resume with `{SFT_CMD} --resume {quoted}`",
        )
    stopped.exit_code = exc.exit_code  # 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP
    return stopped
