"""A deliberately flawed reward for `ppoqa train --reward-fn`: the RLHF over-optimization demo.

It pays 1 for the answer "Paris" to any question, the right answer to exactly one of the
built-in questions. A policy that maximizes it forgets the other four answers; a KL penalty
toward the supervised starting point keeps them (README, "RLHF in miniature").
"""


def is_paris(question: str, answer: str, target: str) -> float:
    """1.0 if the generated answer is "Paris", else 0.0 (question and target are ignored)."""
    return 1.0 if answer.strip().lower() == "paris" else 0.0
