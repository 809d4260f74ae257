"""train(): seed -> envs -> loop(rollout -> GAE -> PPO update -> greedy eval) -> run directory.

The core reports through plain callbacks (dicts and dataclasses), so the CLI can draw progress
bars and tables while tests and library users need no terminal.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppo_cli.config import Config, config_to_yaml, validate
from ppo_cli.curriculum import Curriculum
from ppo_cli.data import QADataset, Vocabulary, load_dataset
from ppo_cli.envs.text_qa_vec import QATask, TextQAVecEnv
from ppo_cli.evaluate import QAResult, accuracy, evaluate_qa, reward_spec
from ppo_cli.policies import ActorCritic, build_policy
from ppo_cli.ppo import UpdateSettings, ppo_update
from ppo_cli.rollout import collect_text_episodes
from ppo_cli.rundir import (
    CONFIG,
    DATASET,
    VOCAB,
    append_metrics,
    atomic_write_text,
    new_run_dir,
    prepare_run_dir,
    save_checkpoint,
    write_yaml,
)


@dataclass
class TrainResult:
    """The seed's "training math" for the run that really happened."""

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


def seed_everything(seed: int, threads: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from ppo_cli.errors import ConfigError

        raise ConfigError("--device cuda: no CUDA device is available", "use --device cpu")
    return torch.device(name)


def balanced_questions(num_questions: int, num_episodes: int) -> torch.Tensor:
    """Every question equally often (up to one), in random order: lower-variance batches."""
    reps = -(-num_episodes // num_questions)
    return torch.cat([torch.randperm(num_questions) for _ in range(reps)])[:num_episodes]


def explained_variance(
    values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor
) -> float | None:
    """1 - Var(returns - values) / Var(returns) over real steps (CleanRL's diagnostic):
    1 means the critic predicts returns perfectly, <= 0 that it explains nothing. None when
    the returns do not vary."""
    m = mask.bool()
    y, v = returns[m], values[m]
    var_y = float(y.var()) if y.numel() > 1 else 0.0
    if var_y == 0.0 or not math.isfinite(var_y):
        return None
    return 1.0 - float((y - v).var()) / var_y


def build_text_setup(cfg: Config, dataset: QADataset) -> tuple[QATask, ActorCritic]:
    vocab = Vocabulary.from_dataset(dataset)
    task = QATask(dataset, vocab, reward_spec(cfg, dataset), cfg.max_answer_tokens)
    spec: dict[str, Any] = {
        "kind": cfg.policy,
        "vocab_size": len(vocab),
        "hidden_size": cfg.hidden_size,
    }
    if cfg.answer_vocab:  # issue 6: generate only words that occur in some answer
        spec["answer_vocab"] = sorted({int(t) for t in task.targets[task.target_valid]})
    policy = build_policy(spec)
    return task, policy


def train(
    cfg: Config,
    run_dir: Path | None = None,
    callbacks: Callbacks | None = None,
) -> TrainResult:
    """Train on cfg.env and write a run directory; text QA here, gymnasium ids elsewhere."""
    validate(cfg)
    cb: Callbacks = callbacks or Callbacks()
    if cfg.tensorboard:  # issue 6: a writer wrapped around the caller's callbacks
        from ppo_cli.tensorboard import TensorBoardCallbacks

        cb = TensorBoardCallbacks(cb)  # type: ignore[assignment]
    try:
        if not cfg.is_text_qa:
            from ppo_cli.gym_trainer import train_gym

            return train_gym(cfg, run_dir, cb)
        return train_text_qa(cfg, run_dir, cb)
    finally:
        if cfg.tensorboard:
            cb.close()  # type: ignore[attr-defined]


def train_text_qa(cfg: Config, run_dir: Path | None, cb: Callbacks) -> TrainResult:
    if cfg.policy == "mlp":
        from ppo_cli.errors import ConfigError

        raise ConfigError("--policy mlp is for gymnasium environments", "use lstm or transformer")
    dataset = load_dataset(cfg.dataset)
    run_dir = prepare_run_dir(run_dir or new_run_dir(cfg.env, cfg.seed))
    seed_everything(cfg.seed, cfg.threads)
    task, policy = build_text_setup(cfg, dataset)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate, eps=1e-5)
    settings = UpdateSettings.from_config(cfg)

    atomic_write_text(run_dir / CONFIG, config_to_yaml(cfg))
    write_yaml(run_dir / DATASET, dataset.to_dict())
    atomic_write_text(run_dir / VOCAB, json.dumps(task.vocab.itos, ensure_ascii=False))
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    cb.on_start(cfg, run_dir, cfg.iterations)

    venv = TextQAVecEnv(task)
    curriculum = (
        Curriculum.from_dataset(dataset, cfg.curriculum_threshold) if cfg.curriculum else None
    )
    episodes = steps = epochs = updates = 0
    results: list[QAResult] = []
    acc: float | None = None
    stopped_early = False
    start = time.perf_counter()
    iteration = 0
    for iteration in range(1, cfg.iterations + 1):
        if cfg.anneal_lr:
            frac = 1.0 - (iteration - 1) / cfg.iterations
            optimizer.param_groups[0]["lr"] = frac * cfg.learning_rate
        if curriculum is not None:  # only the active levels' questions
            q_idx = curriculum.sample(cfg.num_episodes)
        else:
            q_idx = balanced_questions(task.num_questions, cfg.num_episodes)
        ro = collect_text_episodes(policy, venv, q_idx)
        batch, _ = ro.to_batch(cfg.gamma, cfg.gae_lambda)
        stats = ppo_update(policy, optimizer, batch, settings)
        episodes += ro.question_idx.shape[0]
        steps += ro.num_steps
        epochs += stats["epochs"]
        updates += stats["gradient_updates"]

        record: dict[str, Any] = {
            "iteration": iteration,
            "episodes": episodes,
            "steps": steps,
            "mean_reward": float(ro.episode_returns.mean()),
            "train_accuracy": float(ro.exact.float().mean()),
            "mean_length": float(ro.mask.sum(1).float().mean()),
            **{
                k: stats[k]
                for k in (
                    "loss",
                    "policy_loss",
                    "value_loss",
                    "entropy",
                    "approx_kl",
                    "clipfrac",
                    "epoch_losses",
                )
            },
            "learning_rate": optimizer.param_groups[0]["lr"],
            "explained_variance": explained_variance(ro.values, batch.returns, ro.mask),
        }
        evaluate_now = iteration % cfg.eval_every == 0 or iteration == cfg.iterations
        if evaluate_now:
            results = evaluate_qa(policy, task)
            acc = accuracy(results)
            record["eval_accuracy"] = acc
            if curriculum is not None:
                record.update(curriculum.observe([r.correct for r in results]))
            cb.on_eval(iteration, results)
        record["wall_seconds"] = round(time.perf_counter() - start, 4)
        if not all(math.isfinite(v) for v in (record["loss"], record["mean_reward"])):
            from ppo_cli.errors import TrainingError

            raise TrainingError(
                f"metrics became NaN/Inf at iteration {iteration}", "lower --learning-rate"
            )
        append_metrics(run_dir, record)
        cb.on_iteration(record)
        if (
            evaluate_now
            and cfg.target_accuracy is not None
            and acc is not None
            and acc >= cfg.target_accuracy
            and (curriculum is None or curriculum.complete)
        ):
            stopped_early = iteration < cfg.iterations
            break
    wall = time.perf_counter() - start
    if not results or iteration % cfg.eval_every != 0:
        results = evaluate_qa(policy, task)
        acc = accuracy(results)
    save_checkpoint(
        run_dir,
        {
            "policy_spec": policy.spec(),
            "policy": policy.state_dict(),
            "optimizer": optimizer.state_dict(),
            "vocab": list(task.vocab.itos),
            "dataset_fingerprint": dataset.fingerprint(),
            "iteration": iteration,
            "env": cfg.env,
        },
    )
    return TrainResult(
        run_dir=run_dir,
        env=cfg.env,
        iterations=iteration,
        episodes=episodes,
        steps=steps,
        epochs=epochs,
        gradient_updates=updates,
        wall_seconds=wall,
        final_accuracy=acc,
        final_results=results,
        stopped_early=stopped_early,
    )
