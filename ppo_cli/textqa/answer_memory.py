"""A memory of each question's best answer, and exploration probes that try new first words.

On a large dataset plain PPO finds a rare right answer once, raises its probability by at most
the clip range, and rarely samples it again. Two mechanisms of Memory Augmented Policy
Optimization (Liang et al., 2018, "MAPO") keep such finds, for an environment that scores the
same answer the same way every time: the **memory** joins the batch with a question's best
answer wherever it beats every new sample, and forward-only **probes** of the questions the
greedy policy gets wrong try first tokens not yet tried (Gumbel top-k). Probes are not trained
on (an off-policy sample with a negative advantage would push the policy toward its current
favourite); what they find enters the memory.
"""

from __future__ import annotations

from typing import Any

import torch

from ppo_cli.textqa.data import END_ID, PAD_ID

_TIE = 1e-6  # returns closer than this are the same score (float sums of step penalties)


class AnswerMemory:
    """best_return [Q], best_actions [Q, T] (<PAD> after the end) and tried [Q, C] bool over
    the policy's first-decision columns (None when the table would be too large)."""

    def __init__(self, num_questions: int, max_steps: int, columns: torch.Tensor) -> None:
        self.columns = columns  # [C] token id of each first-decision column
        self.best_return = torch.full((num_questions,), -float("inf"))
        self.best_actions = torch.full((num_questions, max_steps), PAD_ID, dtype=torch.long)
        self.best_exact = torch.zeros(num_questions, dtype=torch.bool)
        # The tried-first-token table is [questions, first-token choices] bools; beyond 50M
        # entries the probes still draw distinct tokens within an iteration but keep no table.
        self.tried: torch.Tensor | None = None
        if num_questions * columns.numel() <= 50_000_000:
            self.tried = torch.zeros(num_questions, columns.numel(), dtype=torch.bool)

    @property
    def num_questions(self) -> int:
        return self.best_return.shape[0]

    def observe(
        self,
        questions: torch.Tensor,
        returns: torch.Tensor,
        actions: torch.Tensor,
        exact: torch.Tensor,
    ) -> int:
        """Keep, per question, the best of these episodes [N] if it beats the memory, and count
        their first tokens as tried; returns how many questions improved."""
        best_here, row = _best_rows(questions, returns, self.num_questions)
        improved = (row < questions.numel()) & (best_here > self.best_return + _TIE)
        if improved.any():
            self.best_return[improved] = best_here[improved]
            self.best_actions[improved] = actions[row[improved]]
            self.best_exact[improved] = exact[row[improved]]
        if self.tried is not None:  # what the policy samples anyway, probes need not try
            first = actions[:, 0].contiguous()
            column = torch.searchsorted(self.columns, first).clamp(max=len(self.columns) - 1)
            known = self.columns[column] == first
            self.tried[questions[known], column[known]] = True
        return int(improved.sum())

    def replay_questions(self, questions: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
        """The questions of this batch whose remembered answer beats every answer sampled
        for them now: [K] sorted indices."""
        best_here, _ = _best_rows(questions, returns, self.num_questions)
        present = torch.unique(questions)
        return present[self.best_return[present] > best_here[present] + _TIE]

    def probe_force(
        self, questions: torch.Tensor, logits: torch.Tensor, per_question: int, max_steps: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(question per probe [n], force [n, T]) for `per_question` probes of each question
        (questions [U], distinct; logits [U, C] their masked first-decision logits): first
        tokens drawn without replacement among the untried, the rest left to the policy."""
        allowed = logits > -1e8  # masked columns hold -1e9
        if self.tried is not None:
            untried = allowed & ~self.tried[questions]
            spent = ~untried.any(-1)  # every allowed first token tried: start over
            if spent.any():
                self.tried[questions[spent]] = False
                untried[spent] = allowed[spent]
            allowed = untried
        k = min(per_question, logits.shape[1])
        # Gumbel top-k: k draws without replacement from softmax(logits) over the allowed
        gumbel = -torch.log(-torch.log(torch.rand(logits.shape).clamp(1e-12, 1 - 1e-7)))
        keys = torch.where(allowed, logits + gumbel, torch.full_like(logits, -float("inf")))
        top = torch.topk(keys, k, dim=-1)
        ok = torch.isfinite(top.values)  # fewer than k allowed: fewer probes
        q = questions.unsqueeze(1).expand_as(top.indices)[ok]
        if self.tried is not None:
            self.tried[q, top.indices[ok]] = True
        first = self.columns[top.indices[ok]]  # [n]
        rank = torch.arange(k).expand_as(top.indices)[ok]  # [n]
        short_q, short = self._shorter(questions, max_steps)
        force = torch.cat([self._probe_answers(q, first, rank, max_steps), short])
        return torch.cat([q, short_q]), force

    def _shorter(
        self, questions: torch.Tensor, max_steps: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two more probes for each of these questions whose remembered answer has two words or
        more and is not exactly right: that answer without its first word, and without its
        last ("forty three" -> "three"; "Ge red" -> "Ge"). A reward that pays for every right
        word keeps a policy on such a hedge; these two take it off."""
        best = self.best_actions[questions]  # [U, T]
        length = (best != PAD_ID).sum(1) - 1  # words before <END> (-1 with no memory)
        keep = (length >= 2) & ~self.best_exact[questions] & (best[:, 0] != PAD_ID)
        best, length = best[keep], length[keep]
        without_first = torch.cat([best[:, 1:], torch.full_like(best[:, :1], PAD_ID)], 1)
        without_last = best.clone()
        rows = torch.arange(best.shape[0])
        without_last[rows, length - 1] = without_last[rows, length]  # <END> a word earlier
        without_last[rows, length] = PAD_ID
        q = questions[keep]
        return torch.cat([q, q]), torch.cat([without_first, without_last])[:, :max_steps]

    def _probe_answers(
        self, q: torch.Tensor, first: torch.Tensor, rank: torch.Tensor, max_steps: int
    ) -> torch.Tensor:
        """force [n, T] for probes with these first tokens. By rank, the new word: continued by
        the policy; alone; replacing the remembered first word ("Abuja Delhi" -> "New Delhi");
        before the remembered answer ("three" -> "eighty three"); after its first word. Partly
        right answers are where the last questions of a large set get stuck."""
        force = torch.full((q.numel(), max_steps), PAD_ID, dtype=torch.long)
        force[:, 0] = first
        best = self.best_actions[q]  # [n, T] (<PAD> for a question with no memory yet)
        alone, replace, before, after = (rank % 5 == i for i in range(1, 5))
        force[alone, 1] = END_ID
        force[replace, 1:] = best[replace, 1:]
        force[before, 1:] = best[before, :-1]
        force[after, 0] = best[after, 0]
        force[after, 1] = first[after]
        force[after, 2:] = best[after, 1:-1]
        # a remembered answer never holds a word after its <END>: <PAD> there, the policy's
        # choice; where the memory is empty, the policy continues after the new word
        empty = (best[:, 0] == PAD_ID) & ~alone
        force[empty, 1:] = PAD_ID
        force[empty, 0] = first[empty]
        return force

    @property
    def exact_share(self) -> float:
        """Share of questions whose remembered answer is exactly right."""
        return float(self.best_exact.float().mean())

    def state_dict(self) -> dict[str, Any]:
        return {k: _copy(getattr(self, k)) for k in _STATE}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in _STATE:  # a checkpoint from before the tried table has none
            setattr(self, k, _copy(state.get(k) if k == "tried" else state[k]))


_STATE = ("best_return", "best_actions", "best_exact", "tried")


def _copy(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.clone()


def _best_rows(
    questions: torch.Tensor, returns: torch.Tensor, num_questions: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per question: the best return among these episodes (-inf if none) and the first row
    that earned it (N if none)."""
    n = questions.numel()
    best = torch.full((num_questions,), -float("inf"))
    best = best.scatter_reduce(0, questions, returns.float(), "amax")
    is_best = returns >= best[questions]
    first = torch.full((num_questions,), n, dtype=torch.long)
    first = first.scatter_reduce(0, questions[is_best], torch.arange(n)[is_best], "amin")
    return best, first
