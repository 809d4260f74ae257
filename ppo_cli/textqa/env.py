"""The text-QA task as tensors: many episodes stepped at once.

An episode is one question; a step is one generated token; it ends at <END> or after
`max_answer_tokens + 1` steps. The final step earns the run's named reward
(ppo_cli.textqa.rewards); every step before the last costs `step_penalty`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.utils.rnn import pad_sequence

from ppo_cli.errors import DatasetError
from ppo_cli.textqa.data import END_ID, PAD_ID, START_ID, QADataset, Vocabulary, detokenize
from ppo_cli.textqa.rewards import RewardSpec, distinct_overlap

# Tokens a text policy never generates: they carry no meaning in an answer.
BANNED_ACTIONS = (PAD_ID, START_ID, 3)  # <PAD>, <START>, <UNK>


def encode_prompts(questions: list[list[int]], width: int = 0) -> torch.Tensor:
    """[N, P] prompts (P at least `width`): each question left-padded with <PAD>, then <START>
    in the last column, so every first decision is at the same column (a lockstep batch)."""
    p = max(width, max(len(q) for q in questions) + 1)
    prompts = torch.full((len(questions), p), PAD_ID, dtype=torch.long)
    for i, ids in enumerate(questions):
        if ids:
            prompts[i, p - 1 - len(ids) : p - 1] = torch.tensor(ids)
    prompts[:, -1] = START_ID
    return prompts


# The padded [questions, longest question + 1] prompt tensor (int64) may take at most this
# much memory: one very long question among many short ones pads every other one to its length.
MAX_PROMPT_BYTES = 1_000_000_000


class QATask:
    """A dataset encoded once into padded tensors, plus the reward rules."""

    def __init__(
        self,
        dataset: QADataset,
        vocab: Vocabulary,
        rewards: RewardSpec | None = None,
        max_answer_tokens: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.vocab = vocab
        self.rewards = rewards or RewardSpec()
        self.max_answer_tokens = max_answer_tokens or dataset.max_answer_tokens
        self.max_steps = self.max_answer_tokens + 1
        for i, pair in enumerate(dataset.pairs):
            # A limit given from outside the file (a flag, an env kwarg) can be shorter than an
            # answer: such a question could never be answered right, so refuse it up front.
            if len(pair.answer_tokens) > self.max_answer_tokens:
                raise DatasetError(
                    f"{dataset.source}: pair {i}: answer '{pair.answer}' has "
                    f"{len(pair.answer_tokens)} tokens, more than the answer-length limit of "
                    f"{self.max_answer_tokens}",
                    "raise --max-answer-tokens (or max_answer_tokens) or shorten the answer",
                )
        questions = [vocab.encode(p.question_tokens)[0] for p in dataset.pairs]
        q, p = len(questions), max(map(len, questions), default=0) + 1
        if q * p * 8 > MAX_PROMPT_BYTES:  # refused before the prompt tensor is allocated
            raise DatasetError(
                f"{dataset.source}: {q:,} questions padded to the longest ({p - 1:,} tokens) "
                f"need {q * p * 8 / 1e9:.1f} GB of prompts in memory, more than the limit of "
                f"{MAX_PROMPT_BYTES / 1e9:.1f} GB",
                "shorten the longest questions or split the dataset",
            )
        answers = [vocab.encode(p.answer_tokens)[0] for p in dataset.pairs]
        self.prompts = encode_prompts(questions)  # [Q, P]
        self.prompt_len = self.prompts.shape[1]
        # targets: [Q, A] answer ids right-padded; target_len: [Q]
        rows = [torch.tensor(ids, dtype=torch.long) for ids in answers]
        self.targets = pad_sequence(rows, batch_first=True, padding_value=PAD_ID)
        self.target_len = torch.tensor([len(x) for x in answers])
        self.target_valid = torch.arange(self.targets.shape[1]) < self.target_len.unsqueeze(1)
        # --reward-fn: a Python function (question, answer, target) -> float whose
        # value replaces the named reward's final reward of a finished answer; None keeps it.
        self.score_fn: Callable[[str, str, str], float] | None = None

    @property
    def num_questions(self) -> int:
        return len(self.dataset.pairs)

    def score(
        self,
        question_idx: torch.Tensor,
        answer: torch.Tensor,
        answer_len: torch.Tensor,
        rows: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(final reward, exact match, reward credit, distinct shared words), each [N], of the
        answers [N, T] (ids before <END>, up to answer_len); score_fn, when set, gives the final
        reward of each answer that ends now (rows)."""
        tgt = self.targets[question_idx]  # [N, A]
        tgt_len = self.target_len[question_idx]  # [N]
        final, exact, credit = self.rewards.score(answer, answer_len, tgt, tgt_len)
        if self.score_fn is not None:
            for i in rows.nonzero().flatten().tolist():
                pair = self.dataset.pairs[int(question_idx[i])]
                text = self.answer_text(answer[i], answer_len[i])
                final[i] = self.score_fn(pair.question, text, pair.answer)
        return final, exact, credit, distinct_overlap(answer, answer_len, tgt, tgt_len)

    def answer_text(self, answer: torch.Tensor, length: torch.Tensor | int) -> str:
        return detokenize(self.vocab.decode(answer[: int(length)].tolist()))


class TextQAVecEnv:
    """N episodes in lockstep; finished rows stay finished until the next reset."""

    def __init__(self, task: QATask) -> None:
        self.task = task

    def reset(
        self, question_idx: torch.Tensor, prompts: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Start one episode per question index; returns the prompts [N, P]. `prompts` replaces
        the dataset's questions (for `ask`, which ignores the rewards against question_idx's)."""
        n = question_idx.shape[0]
        self.question_idx = question_idx
        self.answer = torch.full((n, self.task.max_steps), PAD_ID, dtype=torch.long)  # [N, T]
        self.answer_len = torch.zeros(n, dtype=torch.long)
        self.t = 0
        self.done, self.exact = (torch.zeros(n, dtype=torch.bool) for _ in range(2))
        self.overlap = torch.zeros(n, dtype=torch.long)
        self.credit = torch.zeros(n)
        return self.task.prompts[question_idx] if prompts is None else prompts

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply one token per episode; returns (rewards [N], terminated_now [N]).

        Rows that were already done get reward 0 and are not changed.
        """
        active = ~self.done
        is_end = actions == END_ID
        # The last step (t = max_answer_tokens) can only close the answer: a word chosen there
        # is dropped, so an answer never holds more than max_answer_tokens tokens.
        writes = active & ~is_end & (self.t < self.task.max_answer_tokens)
        self.answer[writes, self.t] = actions[writes]
        self.answer_len += writes.long()
        self.t += 1
        ends_now = active & (is_end | (self.t >= self.task.max_steps))
        rewards = torch.where(active, -self.task.rewards.step_penalty, 0.0)
        if ends_now.any():
            final, exact, credit, overlap = self.task.score(
                self.question_idx, self.answer, self.answer_len, ends_now
            )
            rewards = torch.where(ends_now, final, rewards)
            self.exact = torch.where(ends_now, exact, self.exact)
            self.credit = torch.where(ends_now, credit, self.credit)
            self.overlap = torch.where(ends_now, overlap, self.overlap)
        self.done = self.done | ends_now
        return rewards, ends_now
