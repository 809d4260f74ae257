"""Greedy evaluation and answering for text-QA runs (used by train, eval and ask)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ppo_cli.config import Config, resolve
from ppo_cli.core.policy import ActorCritic
from ppo_cli.core.rundir import CONFIG, DATASET, load_checkpoint, read_config, run_env
from ppo_cli.core.session import QAResult, check_dataset_fingerprint
from ppo_cli.errors import DatasetError, RunError
from ppo_cli.textqa.data import QADataset, Vocabulary, load_dataset, read_run_dataset, tokenize
from ppo_cli.textqa.env import QATask, RewardSpec, TextQAVecEnv, encode_prompts
from ppo_cli.textqa.policies import build_policy
from ppo_cli.textqa.rewards import DEFAULT_REWARD, check_reward_fits, check_reward_name
from ppo_cli.textqa.rollout import collect_text_episodes


def reward_spec(cfg: Config, dataset: QADataset) -> RewardSpec:
    """Defaults < the dataset's `reward:`/`rewards:` < explicit config values (--reward, ...);
    refuses a parameter the reward does not use and a reward that pays a wrong answer as much
    as the exact one."""
    values: dict[str, Any] = dict(dataset.rewards)
    sources = dict.fromkeys(values, f"{dataset.source}: rewards")
    for key in ("correct", "overlap", "partial", "wrong", "step_penalty"):
        name = key if key == "step_penalty" else f"reward_{key}"
        if getattr(cfg, name) is not None:
            values[key] = getattr(cfg, name)
            sources[key] = f"--{name.replace('_', '-')}"
    if cfg.reward is not None:
        name, where = cfg.reward, "--reward"
    elif dataset.reward is not None:
        name, where = dataset.reward, f"{dataset.source}: 'reward'"
    else:
        name, where = DEFAULT_REWARD, "default reward"
    definition = check_reward_name(name, where)
    name = definition.name  # an alias names the reward it stands for
    unused = "partial" if definition.uses == "overlap" else "overlap"
    if unused in values:
        raise DatasetError(
            f"{sources[unused]}: '{unused}' does not apply to reward {name!r} "
            f"(it weighs {'the walkthrough reward' if unused == 'overlap' else 'partial credit'})",
            f"use '{definition.uses}' with reward {name!r}, or choose "
            f"{'reward: walkthrough' if unused == 'overlap' else 'another reward'}",
        )
    spec = RewardSpec(**values, name=name)
    lengths = [len(p.answer_tokens) for p in dataset.pairs]
    check_reward_fits(
        spec, lengths, cfg.max_answer_tokens or dataset.max_answer_tokens, dataset.source
    )
    return spec


def eval_chunk(vocab_size: int) -> int:
    """How many questions one greedy batch answers at once: its [batch, vocabulary] logits (and
    a few temporaries of that size) stay near 256 MB, linear time and bounded memory on 300k
    questions."""
    return max(64, 256_000_000 // (12 * max(1, vocab_size)))


@torch.no_grad()
def evaluate_qa(policy: ActorCritic, task: QATask) -> list[QAResult]:
    """Greedy answer to every question of the task, in batches of eval_chunk() questions."""
    was_training = policy.training
    policy.eval()
    venv = TextQAVecEnv(task)
    results = []
    chunk = eval_chunk(len(task.vocab))
    try:
        for start in range(0, task.num_questions, chunk):
            idx = torch.arange(start, min(start + chunk, task.num_questions))
            ro = collect_text_episodes(policy, venv, idx, greedy=True)
            results += [
                QAResult(
                    question=task.dataset.pairs[i].question,
                    target=task.dataset.pairs[i].answer,
                    answer=task.answer_text(ro.answer[j], ro.answer_len[j]),
                    reward=round(float(ro.episode_returns[j]), 4),
                    correct=bool(ro.exact[j]),
                )
                for j, i in enumerate(idx.tolist())
            ]
    finally:
        policy.train(was_training)
    return results


def accuracy(results: list[QAResult]) -> float:
    return sum(r.correct for r in results) / max(1, len(results))


@dataclass
class TextRun:
    """A trained text-QA run loaded back from its directory (its dataset and vocabulary are
    the task's)."""

    config: Config
    policy: ActorCritic
    task: QATask


def check_fits(policy: ActorCritic, prompt_len: int, max_steps: int, source: str) -> None:
    """A transformer reads at most `max_len` positions: say so instead of an IndexError."""
    max_len = getattr(policy, "max_len", None)
    if max_len is not None and prompt_len + max_steps - 1 > max_len:
        raise DatasetError(
            f"{source}: a question of {prompt_len - 1} tokens plus an answer of up to "
            f"{max_steps - 1} tokens is longer than the transformer reads ({max_len} tokens)",
            "shorten the question, or use --policy lstm",
        )


def load_text_run(run: Path) -> TextRun:
    if run_env(run) != "text-qa":
        raise RunError(
            f"{run}: is a run of {run_env(run)}, not a text-QA run",
            "`ppoqa ask` answers questions only with runs trained on --env text-qa",
        )
    cfg = resolve(base=read_config(run), source=str(run / CONFIG))
    ckpt = load_checkpoint(run)
    dataset = read_run_dataset(
        run / DATASET, "a text-QA run directory holds the dataset it was trained on; retrain"
    )
    check_dataset_fingerprint(ckpt, dataset.fingerprint(), run)
    try:
        itos = ckpt["vocab"]
        if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
            raise ValueError("vocabulary is not a list of tokens")
        vocab = Vocabulary.from_list(itos)
        # the network's description, checked before anything is allocated for it
        spec = ckpt["policy_spec"]
        if not isinstance(spec, dict) or spec.get("kind") not in ("lstm", "transformer"):
            raise ValueError("not a text policy")
        if spec.get("vocab_size") != len(vocab):
            raise ValueError("vocabulary size does not match")
        for key, high in (("hidden_size", 4096), ("num_layers", 64), ("num_heads", 64)):
            value = spec.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise ValueError(f"{key} out of range")
        policy = build_policy(dict(spec))
        policy.load_state_dict(ckpt["policy"])
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as exc:
        raise RunError(
            f"{run}: checkpoint or run files do not fit together "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:80] if str(exc) else ''})",
            "retrain with `ppoqa train`",
        ) from exc
    policy.eval()
    return TextRun(
        cfg, policy, QATask(dataset, vocab, reward_spec(cfg, dataset), cfg.max_answer_tokens)
    )


# A question is familiar when every word is known and its word set's Jaccard similarity to
# some training question reaches this: "What day comes after Tuesday?" is near "... Monday?"
# (4 of 6 words, 0.67), "What comes after three?" is not (3 of 6, 0.5).
FAMILIAR_SIMILARITY = 0.6


def word_set(text: str) -> frozenset[str]:
    """The lower-cased words of a text, without punctuation tokens."""
    return frozenset(t.lower() for t in tokenize(text) if any(c.isalnum() for c in t))


@dataclass
class Answer:
    """A greedy answer, how sure the policy is of it, and how close the question is to the
    training questions (a policy is often confidently wrong on questions unlike them)."""

    question: str
    answer: str
    confidence: float  # probability of the whole greedy answer (its tokens and <END>)
    unknown_words: list[str]
    nearest: str | None  # the most similar training question
    similarity: float  # Jaccard similarity of the word sets, 0..1

    @property
    def familiar(self) -> bool:
        return not self.unknown_words and self.similarity >= FAMILIAR_SIMILARITY

    def reason(self) -> str:
        """Why the question is unfamiliar, in one clause ('' when it is familiar)."""
        if self.unknown_words:
            words = ", ".join(repr(w) for w in self.unknown_words)
            return f"words this run never saw were read as <UNK>: {words}"
        if self.similarity < FAMILIAR_SIMILARITY:
            return (
                f'unlike every training question (nearest: "{self.nearest}", word overlap '
                f"{self.similarity:.2f} < {FAMILIAR_SIMILARITY})"
            )
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "confidence": round(self.confidence, 4),
            "familiar": self.familiar,
            "unknown_words": self.unknown_words,
            "nearest": self.nearest,
            "similarity": round(self.similarity, 4),
        }


class NearestQuestion:
    """The training question sharing the most words with a query (Jaccard), via an inverted
    index, so a run with many questions is searched only where words are shared."""

    def __init__(self, questions: list[str]) -> None:
        self.questions = questions
        self.sets = [word_set(q) for q in questions]
        self.index: dict[str, list[int]] = {}
        for i, words in enumerate(self.sets):
            for w in words:
                self.index.setdefault(w, []).append(i)

    def find(self, question: str) -> tuple[str | None, float]:
        words = word_set(question)
        shared = Counter(i for w in words for i in self.index.get(w, ()))
        sims = {i: n / (len(words) + len(self.sets[i]) - n) for i, n in shared.items()}
        best = max(sims, key=sims.__getitem__, default=None)
        if best is None:
            return (self.questions[0] if self.questions else None), 0.0
        return self.questions[best], sims[best]


@torch.no_grad()
def ask(run: TextRun, questions: list[str]) -> list[Answer]:
    """Greedy answers for free-text questions, each with its confidence and familiarity."""
    if not questions:
        return []
    encoded = [run.task.vocab.encode(tokenize(q)) for q in questions]  # (ids, unknown words)
    # At least the training width: a recurrent policy reads the padding too, so a short
    # question asked alone must look exactly as it did in training.
    prompts = encode_prompts([ids for ids, _ in encoded], run.task.prompt_len)  # [N, P]
    check_fits(run.policy, prompts.shape[1], run.task.max_steps, "question")
    # every row in question 0's place: the prompts replace its text, its rewards are not read
    venv, rows = TextQAVecEnv(run.task), torch.zeros(len(questions), dtype=torch.long)
    ro = collect_text_episodes(run.policy, venv, rows, greedy=True, prompts=prompts)
    # the product of the greedy tokens' probabilities: exp of the summed log-probs
    confidence = torch.exp((ro.logprobs * ro.mask).sum(1))  # [N]
    nearest = NearestQuestion([p.question for p in run.task.dataset.pairs])
    return [
        Answer(
            q,
            run.task.answer_text(ro.answer[i], ro.answer_len[i]),
            float(confidence[i]),
            list(dict.fromkeys(encoded[i][1])),
            *nearest.find(q),
        )
        for i, q in enumerate(questions)
    ]


def evaluate_on_dataset(run: TextRun, path: Path) -> list[QAResult]:
    """Greedy results of a run on another dataset; its words must be in the run's vocabulary
    to be read (unknown words become <UNK>)."""
    dataset = load_dataset(path)
    task = QATask(dataset, run.task.vocab, run.task.rewards, run.task.max_answer_tokens)
    check_fits(run.policy, task.prompt_len, task.max_steps, dataset.source)
    return evaluate_qa(run.policy, task)
