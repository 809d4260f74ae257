"""How long a text-QA run trains: a cap that grows with the dataset, and a stall rule.

A run ends for one of three reasons, recorded in its summary and checkpoint as `stop_reason`:
``solved`` (greedy accuracy reached --target-accuracy), ``stalled`` (the best greedy accuracy
did not improve for `stall_iterations` iterations) or ``budget`` (the iteration cap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ppo_cli.textqa.data import QADataset


def answer_words(dataset: QADataset) -> int:
    """Distinct words (tokens) of the dataset's answers."""
    return len({t for p in dataset.pairs for t in p.answer_tokens})


def estimate_iterations(answer_words: int) -> int:
    """Iterations a run is expected to need to learn its questions, from the number of
    distinct answer words, what the exploration searches through for each question
    (ppo_cli.textqa.answer_memory): iterations to 95 % greedy accuracy measured on the trivia
    examples of 250 to 1,000 pairs grow about as the square root (docs: large datasets)."""
    return max(10, math.ceil(4.3 * math.sqrt(answer_words)))


def default_iterations(answer_words: int) -> int:
    """The cap when --iterations is not given: three times the estimate, at least 150."""
    return max(150, 3 * estimate_iterations(answer_words))


def default_stall_iterations(num_questions: int) -> int:
    """Patience when --stall-iterations is not given: iterations without enough progress that
    end a run, whatever the dataset's size."""
    return 40


def stall_min_gain(num_questions: int) -> float:
    """The gain in greedy accuracy that counts as progress for the stall rule: any, or one
    question in a hundred on a set of 200 or more, whose last questions come in one at a
    time long after the rest are learned."""
    return 1e-9 if num_questions < 200 else (num_questions // 100) / num_questions - 1e-9


@dataclass
class StallDetector:
    """Tracks the best greedy accuracy, and the last iteration that gained `min_gain` on the
    accuracy of the one before it; `stalled` once none has for `patience` iterations (0 turns
    the rule off)."""

    patience: int
    best: float = -1.0
    best_iteration: int = 0
    min_gain: float = 1e-9
    progress: float = -1.0  # the accuracy at the last iteration that counted as progress
    progress_iteration: int = 0

    def observe(self, iteration: int, accuracy: float) -> None:
        if accuracy > self.best + 1e-9:
            self.best, self.best_iteration = accuracy, iteration
        if accuracy > self.progress + self.min_gain:
            self.progress, self.progress_iteration = accuracy, iteration

    def stalled(self, iteration: int) -> bool:
        return self.patience > 0 and iteration - self.progress_iteration >= self.patience

    def describe(self, iteration: int) -> str:
        gain = "improved" if self.min_gain < 1e-6 else f"gained {100 * self.min_gain:.1f} points"
        return (
            f"stalled: greedy accuracy has not {gain} on {100 * self.progress:.1f}% "
            f"(iteration {self.progress_iteration}) for {iteration - self.progress_iteration} "
            "iterations"
        )


# Above this estimate a run is told up front that it is long, with the remedies.
LONG_RUN_SECONDS = 30 * 60


@dataclass
class Plan:
    """What a text-QA run is expected to cost, said before it starts: the dataset's size, the
    estimated iterations and the cap, and the seconds per iteration measured on this machine
    (a short timed rehearsal of an iteration on a copy of the network)."""

    source: str
    pairs: int
    answer_words: int
    estimated_iterations: int
    cap: int
    seconds_per_iteration: float

    @property
    def estimated_seconds(self) -> float:
        return self.estimated_iterations * self.seconds_per_iteration

    @property
    def too_long(self) -> bool:
        return self.estimated_seconds > LONG_RUN_SECONDS

    def line(self) -> str:
        est = self.estimated_iterations
        return (
            f"{self.source}: {self.pairs:,} pairs, {self.answer_words:,} answer words: about "
            f"{est:,} iterations (~{duration(est * self.seconds_per_iteration)} on this "
            f"machine), at most {self.cap:,} (~{duration(self.cap * self.seconds_per_iteration)})"
        )

    def remedy(self) -> str:
        """What to do about a run estimated to be long."""
        return (
            f"this run is estimated to take over {LONG_RUN_SECONDS // 60} minutes: a supervised "
            "warm start learns the answers first (ppoqa sft --dataset FILE --run-dir runs/sft, "
            "then ppoqa train --init-from runs/sft), or aim lower (--target-accuracy 0.9)"
        )

    def eta(self, iteration: int, elapsed: float) -> str:
        """The time left to the estimate, from the measured pace so far."""
        pace = elapsed / max(1, iteration)
        left = min(self.estimated_iterations, self.cap) - iteration
        if left > 0:
            return f"~{duration(left * pace)} left"
        return "past the estimate" if iteration < self.cap else ""

    def to_dict(self) -> dict[str, object]:
        return {
            "pairs": self.pairs,
            "answer_words": self.answer_words,
            "estimated_iterations": self.estimated_iterations,
            "cap": self.cap,
            "seconds_per_iteration": round(self.seconds_per_iteration, 3),
            "estimated_seconds": round(self.estimated_seconds, 1),
        }


def duration(seconds: float) -> str:
    """'40 s', '4 min', '2.5 h'."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
