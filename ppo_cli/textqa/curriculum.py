"""Which questions a text-QA iteration asks: balanced batches, or a curriculum that trains
on the easiest level first and adds harder ones later.

Pairs carry a `level` (0 = easiest). Training starts with the lowest level active; whenever
greedy accuracy on the active questions reaches the threshold, the next level joins. Episodes
are sampled only from active questions; evaluation still covers every question, so the
reported accuracy stays comparable with a run without a curriculum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def episodes_per_iteration(num_episodes: int | None, num_questions: int) -> int:
    """num_episodes (cfg.num_episodes), or 4 episodes per question (at least 64) when unset:
    with the answer memory replaying what was found, more iterations beat more samples."""
    return num_episodes if num_episodes is not None else max(64, 4 * num_questions)


def balanced_questions(num_questions: int, num_episodes: int) -> torch.Tensor:
    """Every question equally often (up to one), in random order: lower-variance batches."""
    reps = -(-num_episodes // num_questions)
    return torch.cat([torch.randperm(num_questions) for _ in range(reps)])[:num_episodes]


def focused_questions(correct: torch.Tensor, num_episodes: int, share: float) -> torch.Tensor:
    """Like balanced_questions, but `share` of the episodes go to the questions the greedy
    policy gets wrong (correct: [Q] bool), never fewer than their balanced share.

    Why: once most questions are solved, a balanced batch spends most of its episodes where
    nothing is left to learn, and a question stuck on a partial answer ("Delhi" for "New
    Delhi") is explored a few times per iteration. Solved questions keep the rest (rehearsal).
    """
    q = correct.numel()
    wrong = (~correct).nonzero().flatten()
    right = correct.nonzero().flatten()
    if share <= 0 or wrong.numel() == 0 or right.numel() == 0:
        return balanced_questions(q, num_episodes)
    n_wrong = max(round(share * num_episodes), -(-num_episodes * wrong.numel() // q))
    n_wrong = min(n_wrong, num_episodes - right.numel())  # one episode per solved question
    if n_wrong <= 0:
        return balanced_questions(q, num_episodes)
    idx = torch.cat(
        [balanced_sample(wrong, n_wrong), balanced_sample(right, num_episodes - n_wrong)]
    )
    return idx[torch.randperm(num_episodes)]


def balanced_sample(pool: torch.Tensor, num_episodes: int) -> torch.Tensor:
    """num_episodes indices from pool, every member equally often (up to one), random order."""
    return pool[balanced_questions(pool.shape[0], num_episodes)]


class Curriculum:
    """Which questions are active, and when the next level joins."""

    def __init__(self, question_levels: Sequence[int], threshold: float) -> None:
        self.question_levels = torch.tensor(list(question_levels), dtype=torch.long)  # [Q]
        self.levels: list[int] = sorted(set(int(x) for x in question_levels))
        self.threshold = threshold
        self.stage = 0  # index into self.levels of the hardest active level

    @property
    def level(self) -> int:
        return self.levels[self.stage]

    @property
    def complete(self) -> bool:
        """All levels active: from here on the run is an ordinary run on the whole dataset."""
        return self.stage == len(self.levels) - 1

    @property
    def active(self) -> torch.Tensor:
        """Indices [K] of the questions trained on now."""
        return torch.nonzero(self.question_levels <= self.level).squeeze(1)

    def sample(self, num_episodes: int) -> torch.Tensor:
        return balanced_sample(self.active, num_episodes)

    def observe(self, correct: Sequence[bool]) -> dict[str, Any]:
        """Take one greedy evaluation of all questions and add the next level if it is earned;
        returns the metrics: the active questions' accuracy, how many levels were active, and
        the new level if one joined."""
        flags = torch.tensor([bool(c) for c in correct])  # [Q]
        active = self.active
        active_acc = float(flags[active].float().mean())
        record: dict[str, Any] = {
            "active_accuracy": active_acc,
            "active_questions": int(active.shape[0]),
            "curriculum_stage": self.stage + 1,
            "curriculum_stages": len(self.levels),
        }
        if not self.complete and active_acc >= self.threshold:
            self.stage += 1
            record["curriculum_advanced_to"] = self.level
        return record
