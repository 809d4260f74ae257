"""How long a text-QA run trains: a cap that grows with the dataset, and a stall rule.

A run ends for one of three reasons, recorded in its summary and checkpoint as `stop_reason`:
``solved`` (greedy accuracy reached --target-accuracy), ``stalled`` (the best greedy accuracy
did not improve for `stall_iterations` iterations) or ``budget`` (the iteration cap).
"""

from __future__ import annotations

from dataclasses import dataclass

SOLVED, STALLED, BUDGET = "solved", "stalled", "budget"
STOP_REASONS = (SOLVED, STALLED, BUDGET)


def default_iterations(num_questions: int) -> int:
    """The cap when --iterations is not given: 150 for up to 30 questions, then 5 per
    question (a question needs roughly a fixed number of visits to be learned, and each
    iteration asks every question a fixed number of times)."""
    return max(150, 5 * num_questions)


def default_stall_iterations(num_questions: int) -> int:
    """Patience when --stall-iterations is not given: 40 iterations, more for big datasets
    (whose greedy accuracy climbs in smaller steps)."""
    return max(40, num_questions // 4)


@dataclass
class StallDetector:
    """Tracks the best greedy accuracy; `stalled` once it has not improved for `patience`
    iterations (0 turns the rule off)."""

    patience: int
    best: float = -1.0
    best_iteration: int = 0

    def observe(self, iteration: int, accuracy: float) -> None:
        if accuracy > self.best + 1e-9:
            self.best, self.best_iteration = accuracy, iteration

    def stalled(self, iteration: int) -> bool:
        return self.patience > 0 and iteration - self.best_iteration >= self.patience

    def describe(self, iteration: int) -> str:
        return (
            f"stalled: greedy accuracy has not improved on {100 * self.best:.1f}% "
            f"(iteration {self.best_iteration}) for {iteration - self.best_iteration} iterations"
        )
