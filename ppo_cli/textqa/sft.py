"""Supervised fine-tuning (SFT): the warm start every RLHF pipeline begins with.

Teacher forcing: the network reads the question and the *gold* answer so far and is trained
with cross-entropy to predict the next gold token, and <END> after the last one. The episode
layout is exactly the rollout's (prompt, then answer tokens, <PAD> after the end), so one
`policy.evaluate` call scores every position of every answer, as in the PPO update.

The result is an ordinary text-QA run directory (config.yaml, dataset.yaml, vocab.json,
metrics.jsonl, checkpoint.pt): `eval`, `ask`, `plot` and `explain-gae --run` read it, and
`train --init-from` starts PPO from it. Its checkpoint says `kind: sft`; the value head is not
trained here (there is no reward yet), PPO fits it.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ppo_cli.config import Config, config_to_yaml, validate
from ppo_cli.core.optim import PlainAdam
from ppo_cli.core.ppo import check_finite_parameters, masked_mean
from ppo_cli.core.rundir import (
    CONFIG,
    DATASET,
    METRICS,
    VOCAB,
    append_metrics,
    atomic_write_text,
    holds_run,
    load_checkpoint,
    new_run_dir,
    prepare_run_dir,
    truncate_metrics,
    write_yaml,
)
from ppo_cli.core.session import TrainingSession, restore_training_state, training_state
from ppo_cli.errors import ConfigError, RunError, TrainingError, TrainingInterrupted
from ppo_cli.textqa.data import END_ID, PAD_ID, load_dataset, read_run_dataset
from ppo_cli.textqa.env import QATask
from ppo_cli.textqa.evaluate import QAResult, accuracy, evaluate_qa

SFT_CMD = "ppoqa sft"
RUN_KIND = "sft"  # the checkpoint's `kind`: train --resume refuses it, --init-from takes it
DEFAULT_EPOCHS = 60
DEFAULT_BATCH_SIZE = 8


def _resume_settings(run_dir: Path) -> tuple[Config, dict[str, Any], int, int, int]:
    """An interrupted SFT run's config, checkpoint, epochs, batch size and eval interval."""
    from ppo_cli.core.session import resume_config

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
    if counters.get("finished"):
        raise RunError(
            f"{run_dir}: the SFT run already finished all {epochs} epochs",
            f"start PPO from it: ppoqa train --init-from {shlex.quote(str(run_dir))}",
        )
    cfg = resume_config(run_dir, {})
    batch_size = int(settings.get("batch_size", DEFAULT_BATCH_SIZE))
    return cfg, ckpt, epochs, batch_size, int(settings.get("eval_every", 1))


@dataclass
class TeacherBatch:
    """Every question with its gold answer, in the rollout's layout.

    obs: [Q, P + T - 1] prompt then gold answer ids (<PAD> after the end); actions: [Q, T] the
    gold ids then <END>; mask: [Q, T] the steps a perfect episode takes.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    mask: torch.Tensor

    def __getitem__(self, idx: torch.Tensor) -> TeacherBatch:
        return TeacherBatch(self.obs[idx], self.actions[idx], self.mask[idx])


def teacher_batch(task: QATask) -> TeacherBatch:
    q, p, t_max = task.num_questions, task.prompt_len, task.max_steps
    obs = torch.full((q, p + t_max - 1), PAD_ID, dtype=torch.long)
    obs[:, :p] = task.prompts
    actions = torch.full((q, t_max), PAD_ID, dtype=torch.long)
    mask = torch.zeros(q, t_max, dtype=torch.bool)
    for i in range(q):
        n = int(task.target_len[i])
        gold = task.targets[i, :n]
        actions[i, :n] = gold
        actions[i, n] = END_ID  # n <= max_answer_tokens < max_steps: there is room for <END>
        mask[i, : n + 1] = True
        if n:
            obs[i, p : p + n] = gold[: t_max - 1]
    return TeacherBatch(obs, actions, mask)


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


class SFTCallbacks:
    """Hooks the CLI overrides (progress); plain data only."""

    def on_start(self, cfg: Config, run_dir: Path, epochs: int) -> None: ...
    def on_epoch(self, record: dict[str, Any]) -> None: ...
    def on_warning(self, message: str) -> None: ...


def sft(
    cfg: Config,
    epochs: int = DEFAULT_EPOCHS,
    run_dir: Path | None = None,
    callbacks: SFTCallbacks | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    eval_every: int = 1,
    *,
    resume: bool = False,
) -> SFTResult:
    """Teacher-forced cross-entropy on the answers (and <END>) of cfg.dataset; writes a run.

    resume=True continues the interrupted SFT run in run_dir from its checkpoint, with its own
    config, dataset copy, epochs and batch size (cfg, epochs, batch_size and eval_every are
    then taken from the run), and gives the same weights as an uninterrupted run."""
    from ppo_cli.core.trainer import seed_everything
    from ppo_cli.textqa.task import build_text_setup

    ckpt: dict[str, Any] | None = None
    if resume:
        if run_dir is None:
            raise ConfigError("resuming needs the run directory", "ppoqa sft --resume DIR")
        cfg, ckpt, epochs, batch_size, eval_every = _resume_settings(run_dir)
    validate(cfg)
    if epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}", "e.g. --epochs 60")
    if eval_every < 1:
        raise ConfigError(f"--eval-every must be >= 1, got {eval_every}", "e.g. --eval-every 5")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}", "e.g. --batch-size 64")
    cb = callbacks or SFTCallbacks()
    if ckpt is not None and run_dir is not None:
        dataset = read_run_dataset(run_dir / DATASET, f"resume only a folder made by `{SFT_CMD}`")
        if dataset.fingerprint() != ckpt.get("dataset_fingerprint"):
            raise RunError(
                f"{run_dir}: its dataset.yaml changed since the checkpoint",
                "restore the run's dataset.yaml, or start a new SFT run",
            )
    else:
        dataset = load_dataset(cfg.dataset)
    seed_everything(cfg.seed, cfg.threads)
    task, policy = build_text_setup(cfg, dataset)
    data = teacher_batch(task)
    run_dir = prepare_run_dir(run_dir or new_run_dir(f"{cfg.env}-sft", cfg.seed))
    n = data.actions.shape[0]
    mb_size = min(batch_size, n)
    if not resume and holds_run(run_dir):
        raise RunError(
            f"{run_dir}: already holds a run",
            f"choose another --run-dir, or continue an interrupted one: {SFT_CMD} --resume "
            f"{shlex.quote(str(run_dir))}",
        )
    session = TrainingSession(run_dir, 0, resume, cb.on_warning)
    try:
        with session:
            # torch.optim.Adam's update without its 1.5 s torch._dynamo import (ppo_cli.core.optim)
            optimizer = PlainAdam(policy.parameters(), lr=cfg.learning_rate, eps=1e-5)
            counters: dict[str, Any] = {"iteration": 0, "epochs": 0, "gradient_updates": 0}
            if ckpt is not None:  # weights, Adam, RNG: built as a new run, then restored
                counters = restore_training_state(ckpt, policy, optimizer, run_dir)
                truncate_metrics(run_dir, int(counters["iteration"]))
            else:
                write_yaml(run_dir / DATASET, dataset.to_dict())
                atomic_write_text(run_dir / VOCAB, json.dumps(task.vocab.itos, ensure_ascii=False))
                atomic_write_text(run_dir / CONFIG, config_to_yaml(cfg))
                (run_dir / METRICS).unlink(missing_ok=True)
            extra = {
                "vocab": list(task.vocab.itos),
                "dataset_fingerprint": dataset.fingerprint(),
                "env": cfg.env,
                "kind": RUN_KIND,
                "sft": {"epochs": epochs, "batch_size": batch_size, "eval_every": eval_every},
            }
            session.track(lambda: training_state(policy, optimizer, counters, extra))
            first = int(counters["iteration"])
            session.start(first)
            cb.on_start(cfg, run_dir, epochs)
            start = time.perf_counter() - float(counters.get("wall_seconds", 0.0))
            results: list[QAResult] = []
            loss_value = float("nan")
            for epoch in range(first + 1, epochs + 1):
                session.begin()
                losses, token_hits, tokens = [], 0.0, 0.0
                perm = torch.randperm(n) if n > mb_size else torch.arange(n)
                for k in range(0, n, mb_size):
                    mb = data[perm[k : k + mb_size]]
                    logits, _ = policy.logits_values(mb.obs, mb.actions.shape[1])  # [B, T, A]
                    logprobs = torch.log_softmax(logits, -1)
                    gold = logprobs.gather(-1, mb.actions.unsqueeze(-1)).squeeze(-1)  # [B, T]
                    loss = -masked_mean(gold, mb.mask)
                    if not torch.isfinite(loss):
                        raise TrainingError(
                            f"SFT loss became {loss.item()} at epoch {epoch}",
                            "lower --learning-rate",
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    counters["gradient_updates"] += 1
                    losses.append(float(loss.detach()))
                    with torch.no_grad():
                        hits = (logits.argmax(-1) == mb.actions) & mb.mask
                        token_hits += float(hits.sum())
                        tokens += float(mb.mask.sum())
                check_finite_parameters(policy, epoch)
                loss_value = sum(losses) / len(losses)
                record = {
                    "iteration": epoch,
                    "phase": RUN_KIND,
                    "loss": loss_value,
                    "epoch_losses": losses,
                    "token_accuracy": token_hits / max(tokens, 1.0),
                    "learning_rate": optimizer.param_groups[0]["lr"],
                }
                if epoch % eval_every == 0 or epoch == epochs:  # greedy answers to every question
                    results = evaluate_qa(policy, task)
                    record["eval_accuracy"] = accuracy(results)
                record["wall_seconds"] = round(time.perf_counter() - start, 4)
                append_metrics(run_dir, record)
                counters.update(iteration=epoch, epochs=epoch, wall_seconds=record["wall_seconds"])
                session.end(epoch)
                cb.on_epoch(record)
                session.stop_if_requested()
            if not results:  # resumed after its last epoch, before the final save
                results = evaluate_qa(policy, task)
            wall = time.perf_counter() - start
            counters["wall_seconds"] = wall
            counters["accuracy"] = accuracy(results)
            counters["results"] = [r.to_dict() for r in results]
            counters["finished"] = True
            session.save(epochs)
    except TrainingInterrupted as exc:
        saved = session.saved_iteration
        if saved is None:
            stopped = TrainingInterrupted(
                f"ppoqa sft interrupted before its first checkpoint; {run_dir} holds nothing "
                "to resume",
                "run ppoqa sft again",
            )
        else:
            stopped = TrainingInterrupted(
                f"ppoqa sft interrupted; the checkpoint of epoch {saved} of {epochs} and the "
                f"metrics are in {run_dir}",
                f"resume with `{SFT_CMD} --resume {shlex.quote(str(run_dir))}`",
            )
        stopped.exit_code = exc.exit_code  # 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP
        raise stopped from exc
    return SFTResult(
        run_dir=run_dir,
        epochs=epochs,
        gradient_updates=counters["gradient_updates"],
        wall_seconds=wall,
        final_loss=loss_value,
        final_accuracy=accuracy(results),
        final_results=results,
    )
