"""Greedy evaluation and answering for text-QA runs (used by train, eval and ask)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ppo_cli.config import Config, apply_overrides
from ppo_cli.data import QADataset, Vocabulary, parse_dataset, tokenize
from ppo_cli.envs.text_qa_vec import QATask, RewardSpec, TextQAVecEnv, encode_prompts
from ppo_cli.errors import RunError
from ppo_cli.policies import ActorCritic, build_policy
from ppo_cli.rollout import collect_text_episodes
from ppo_cli.rundir import DATASET, load_checkpoint, read_config


@dataclass
class QAResult:
    question: str
    target: str
    answer: str
    reward: float
    correct: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reward_spec(cfg: Config, dataset: QADataset) -> RewardSpec:
    """Seed defaults < the dataset's `rewards:` < explicit config values."""
    values = dict(dataset.rewards)
    for key, name in (
        ("correct", "reward_correct"),
        ("overlap", "reward_overlap"),
        ("wrong", "reward_wrong"),
        ("step_penalty", "step_penalty"),
    ):
        if getattr(cfg, name) is not None:
            values[key] = getattr(cfg, name)
    return RewardSpec(**values)


@torch.no_grad()
def evaluate_qa(policy: ActorCritic, task: QATask) -> list[QAResult]:
    """Greedy answer to every question of the task, all in one batch."""
    was_training = policy.training
    policy.eval()
    venv = TextQAVecEnv(task)
    idx = torch.arange(task.num_questions)
    ro = collect_text_episodes(policy, venv, idx, greedy=True)
    policy.train(was_training)
    results = []
    totals = ro.episode_returns
    for i, pair in enumerate(task.dataset.pairs):
        n = int(ro.answer_len[i])
        results.append(
            QAResult(
                question=pair.question,
                target=pair.answer,
                answer=task.answer_text(ro.answer[i, :n].tolist()),
                reward=round(float(totals[i]), 4),
                correct=bool(ro.exact[i]),
            )
        )
    return results


def accuracy(results: list[QAResult]) -> float:
    return sum(r.correct for r in results) / max(1, len(results))


@dataclass
class TextRun:
    """A trained text-QA run loaded back from its directory."""

    path: Path
    config: Config
    policy: ActorCritic
    vocab: Vocabulary
    dataset: QADataset
    task: QATask
    checkpoint: dict[str, Any]


def load_text_run(run: Path) -> TextRun:
    raw_cfg = read_config(run)
    if raw_cfg.get("env", "text-qa") != "text-qa":
        raise RunError(
            f"{run}: is a {raw_cfg.get('env')} run, not a text-QA run",
            "`ppoqa ask` answers questions only with runs trained on --env text-qa",
        )
    cfg = apply_overrides(Config(), raw_cfg, str(run / "config.yaml"))
    ckpt = load_checkpoint(run)
    try:
        vocab = Vocabulary.from_list(list(ckpt["vocab"]))
        dataset = parse_dataset((run / DATASET).read_text(encoding="utf-8"), str(run / DATASET))
        policy = build_policy(dict(ckpt["policy_spec"]))
        policy.load_state_dict(ckpt["policy"])
    except (KeyError, ValueError, RuntimeError, TypeError, OSError) as exc:
        raise RunError(
            f"{run}: checkpoint or run files do not fit together ({type(exc).__name__})",
            "retrain with `ppoqa train`",
        ) from exc
    policy.eval()
    task = QATask(dataset, vocab, reward_spec(cfg, dataset), cfg.max_answer_tokens)
    return TextRun(run, cfg, policy, vocab, dataset, task, ckpt)


@torch.no_grad()
def answer_questions(run: TextRun, questions: list[str]) -> tuple[list[str], list[str]]:
    """Greedy answers for free-text questions; also returns the words the run never saw."""
    if not questions:
        return [], []
    encoded, unknown = [], []
    for q in questions:
        ids, unk = run.vocab.encode(tokenize(q))
        encoded.append(ids)
        unknown.extend(u for u in unk if u not in unknown)
    n = len(questions)
    prompts = encode_prompts(encoded)  # [N, P]
    if prompts.shape[1] < run.task.prompt_len:
        # Left-pad to the training width: a recurrent policy reads the padding too, so a short
        # question asked alone must look exactly as it did in training.
        pad = torch.zeros(n, run.task.prompt_len - prompts.shape[1], dtype=torch.long)
        prompts = torch.cat([pad, prompts], dim=1)
    ro = collect_text_episodes(
        run.policy,
        TextQAVecEnv(run.task),
        torch.zeros(n, dtype=torch.long),
        greedy=True,
        prompts=prompts,
    )
    answers = [
        run.task.answer_text(ro.answer[i, : int(ro.answer_len[i])].tolist()) for i in range(n)
    ]
    return answers, unknown


def evaluate_on_dataset(run: TextRun, path: Path) -> list[QAResult]:
    """Greedy results of a run on another dataset; its words must be in the run's vocabulary
    to be read (unknown words become <UNK>)."""
    from ppo_cli.data import load_dataset

    dataset = load_dataset(path)
    task = QATask(dataset, run.vocab, run.task.rewards, run.task.max_answer_tokens)
    return evaluate_qa(run.policy, task)
