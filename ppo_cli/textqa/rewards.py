"""Named rewards for text QA, batched on tensors: what an answer earns when its episode ends.

Every reward pays `correct` for the exact answer. A non-exact answer earns `wrong` plus partial
credit weighed by `partial` (by `overlap` for ``walkthrough``, which pays for hedging), and the
rewards differ only in that credit: REWARDS holds each one's summary, docs/rewards-rlhf.md what
each pays and why. Each step before the last costs `step_penalty`. The functions here take
padded id tensors, so the environment and `ppoqa explain-reward` share one definition.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.nn.utils.rnn import pad_sequence

from ppo_cli.errors import ConfigError
from ppo_cli.textqa.data import Vocabulary, detokenize, tokenize

# Answers and targets are [N, L] id tensors, valid up to their lengths [N].
CreditFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _valid(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[N, L] bool: the positions that hold a real token."""
    return torch.arange(ids.shape[1], device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)


def distinct_overlap(
    answer: torch.Tensor, answer_len: torch.Tensor, target: torch.Tensor, target_len: torch.Tensor
) -> torch.Tensor:
    """[N] long: how many distinct target words occur anywhere in the answer (the walkthrough's set
    intersection)."""
    a_ok, t_ok = _valid(answer, answer_len), _valid(target, target_len)
    present = ((target.unsqueeze(2) == answer.unsqueeze(1)) & a_ok.unsqueeze(1)).any(2)  # [N, A]
    return (present & t_ok & _first_occurrence(target, t_ok)).sum(1)


def _first_occurrence(ids: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """[N, L] bool: position i holds the first copy of its token among the valid ones."""
    n = ids.shape[1]
    same = (ids.unsqueeze(2) == ids.unsqueeze(1)) & ok.unsqueeze(1)  # [N, L, L]
    return ~(same & torch.tril(torch.ones(n, n, dtype=torch.bool), diagonal=-1)).any(2)


def _f_score(
    common: torch.Tensor, answer_len: torch.Tensor, target_len: torch.Tensor
) -> torch.Tensor:
    precision = common / answer_len.clamp(min=1).float()
    recall = common / target_len.clamp(min=1).float()
    return torch.where(
        common > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-9), 0.0
    )


def token_f1(
    answer: torch.Tensor, answer_len: torch.Tensor, target: torch.Tensor, target_len: torch.Tensor
) -> torch.Tensor:
    """[N] float in [0, 1]: harmonic mean of token precision and recall, order ignored; a
    word counts as often as both answer and target have it."""
    a_ok, t_ok = _valid(answer, answer_len), _valid(target, target_len)
    in_answer = ((target.unsqueeze(2) == answer.unsqueeze(1)) & a_ok.unsqueeze(1)).sum(2)  # [N, A]
    in_target = ((target.unsqueeze(2) == target.unsqueeze(1)) & t_ok.unsqueeze(1)).sum(2)  # [N, A]
    first = _first_occurrence(target, t_ok) & t_ok
    common = (torch.minimum(in_answer, in_target) * first).sum(1).float()
    return _f_score(common, answer_len, target_len)


def prefix_credit(
    answer: torch.Tensor, answer_len: torch.Tensor, target: torch.Tensor, target_len: torch.Tensor
) -> torch.Tensor:
    """[N] float in [0, 1]: matched leading tokens / the longer of answer and target."""
    k = min(answer.shape[1], target.shape[1])
    both = _valid(answer[:, :k], answer_len) & _valid(target[:, :k], target_len)
    lcp = ((answer[:, :k] == target[:, :k]) & both).long().cumprod(1).sum(1).float()
    return lcp / torch.maximum(answer_len, target_len).clamp(min=1).float()


def strict_prefix_credit(
    answer: torch.Tensor, answer_len: torch.Tensor, target: torch.Tensor, target_len: torch.Tensor
) -> torch.Tensor:
    """[N] float in [0, 1): answer length / target length when the answer is the target's first
    words and nothing else; 0 as soon as it holds one word more or one word wrong."""
    k = min(answer.shape[1], target.shape[1])
    both = _valid(answer[:, :k], answer_len) & _valid(target[:, :k], target_len)
    lcp = ((answer[:, :k] == target[:, :k]) & both).long().cumprod(1).sum(1)
    is_prefix = (lcp == answer_len) & (answer_len < target_len)
    return torch.where(is_prefix, answer_len.float() / target_len.clamp(min=1).float(), 0.0)


def lcs_f1(
    answer: torch.Tensor, answer_len: torch.Tensor, target: torch.Tensor, target_len: torch.Tensor
) -> torch.Tensor:
    """[N] float in [0, 1]: ROUGE-L F1, the F-score of the longest common subsequence."""
    n, t, a = answer.shape[0], answer.shape[1], target.shape[1]
    a_ok, t_ok = _valid(answer, answer_len), _valid(target, target_len)
    match = (answer.unsqueeze(2) == target.unsqueeze(1)) & a_ok.unsqueeze(2) & t_ok.unsqueeze(1)
    prev = torch.zeros(n, a + 1)  # dp row for answer prefix i-1: [N, A+1]
    for i in range(t):  # answers are a few tokens long: a loop over positions, rows batched
        row = torch.zeros(n, a + 1)
        for j in range(a):
            skip = torch.maximum(prev[:, j + 1], row[:, j])
            row[:, j + 1] = torch.where(match[:, i, j], prev[:, j] + 1, skip)
        prev = row
    return _f_score(prev[:, a], answer_len, target_len)


@dataclass(frozen=True)
class RewardDef:
    """One named reward: its credit function, what it is for, and its partial-credit weight."""

    name: str
    credit: CreditFn
    summary: str
    partial: float  # default weight of the credit (0 for exact)
    uses: str = "partial"  # which parameter weighs the credit: overlap (walkthrough) or partial
    ignores_order: bool = False  # pays the target's words in any order


REWARDS: dict[str, RewardDef] = {
    "walkthrough": RewardDef(
        "walkthrough",
        lambda *answer_target: distinct_overlap(*answer_target).float(),
        "the original walkthrough's overlap: `overlap` per distinct target word anywhere in the "
        "answer (pays for hedging and for the wrong word order)",
        2.0,
        "overlap",
        ignores_order=True,
    ),
    "exact": RewardDef(
        "exact",
        lambda answer, *_: torch.zeros(answer.shape[0]),
        "exact answer or nothing: no partial credit",
        0.0,
    ),
    "f1": RewardDef(
        "f1",
        token_f1,
        "token F1 (extra words cost precision; order ignored)",
        4.0,
        ignores_order=True,
    ),
    "prefix": RewardDef(
        "prefix",
        prefix_credit,
        "target words matched from the first on, over the longer length (order-aware)",
        4.0,
    ),
    "strict": RewardDef(
        "strict",
        strict_prefix_credit,
        "only a correct beginning of the target earns credit; any extra or wrong word, none "
        "(a hedge earns what a wrong answer does)",
        4.0,
    ),
    "lcs": RewardDef(
        "lcs", lcs_f1, "ROUGE-L F1: longest common subsequence (order-aware, softer)", 4.0
    ),
}

REWARD_NAMES = tuple(REWARDS)
# Names still accepted for a reward: `seed` was the walkthrough reward's first name.
REWARD_ALIASES = {"seed": "walkthrough"}
# The reward `ppoqa train` uses when neither the dataset nor a flag names one (README "Rewards":
# benchmarks/own_data.py measured the candidates).
DEFAULT_REWARD = "lcs"


def check_reward_name(name: str, where: str) -> RewardDef:
    """The named reward (or its alias), or one line naming the place and the choices."""
    name = REWARD_ALIASES.get(name, name)
    if name not in REWARDS:
        close = difflib.get_close_matches(name, REWARD_NAMES, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(
            f"{where}: unknown reward {name!r}",
            f"{hint}choose one of {', '.join(REWARD_NAMES)} (ppoqa explain-reward shows each)",
        )
    return REWARDS[name]


@dataclass(frozen=True)
class RewardSpec:
    """The reward of a run, a name from REWARDS, and its parameters: `overlap` weighs the
    ``walkthrough`` reward's shared words, `partial` the other rewards' credit in [0, 1] (None:
    the reward's own default)."""

    correct: float = 10.0
    overlap: float = 2.0
    wrong: float = -2.0
    step_penalty: float = 0.1
    name: str = DEFAULT_REWARD
    partial: float | None = None

    @property
    def definition(self) -> RewardDef:
        return check_reward_name(self.name, "reward")

    @property
    def weight(self) -> float:
        """The factor on this reward's credit."""
        d = self.definition
        if d.uses == "overlap":
            return self.overlap
        return d.partial if self.partial is None else self.partial

    def score(
        self,
        answer: torch.Tensor,
        answer_len: torch.Tensor,
        target: torch.Tensor,
        target_len: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(final reward [N], exact [N], credit [N]) of finished answers; exact: the same length
        and the same token at every position."""
        k = min(answer.shape[1], target.shape[1])
        same = (answer[:, :k] == target[:, :k]) | ~_valid(answer[:, :k], answer_len)
        exact = (answer_len == target_len) & (answer_len <= k) & same.all(1)
        credit = self.definition.credit(answer, answer_len, target, target_len)
        final = torch.where(exact, self.correct, self.wrong + self.weight * credit.float())
        return final, exact, credit


def check_reward_fits(
    spec: RewardSpec, target_lengths: list[int], max_answer_tokens: int, where: str
) -> None:
    """Refuse a reward under which some non-exact answer earns as much as the exact one: PPO
    would learn that answer instead (the walkthrough's hedging, at its extreme)."""
    if spec.definition.uses == "overlap":  # every distinct target word, in the wrong order
        best_wrong = spec.wrong + spec.weight * max(
            min(n, max_answer_tokens) for n in target_lengths
        )
    elif spec.definition.name == "exact":
        best_wrong = spec.wrong
    else:  # the other credits reach 1.0 only for a permutation or the exact answer
        best_wrong = spec.wrong + max(0.0, spec.weight)
    if best_wrong >= spec.correct:
        raise ConfigError(
            f"{where}: reward {spec.name!r} pays up to {best_wrong:g} for a wrong answer, "
            f"not less than the {spec.correct:g} for the exact one",
            "raise rewards.correct or lower rewards.partial / rewards.overlap "
            "(ppoqa explain-reward shows what each answer earns)",
        )


# ---- judging final answers (doctor, benchmarks, explain-reward) ---------------------------


def answer_kind(answer: list[str], target: list[str]) -> str:
    """exact | word_order (same words, other order) | hedge (the target's words plus others)
    | partial (some target words) | wrong | empty."""
    if answer == target:
        return "exact"
    if not answer:
        return "empty"
    if sorted(answer) == sorted(target):
        return "word_order"
    if len(answer) > len(target) and not Counter(target) - Counter(answer):
        return "hedge"
    if set(answer) & set(target):
        return "partial"
    return "wrong"


@dataclass
class RewardRow:
    """What one reward pays one answer, as `ppoqa explain-reward` shows it."""

    reward: str
    target: str
    answer: str
    kind: str
    exact: bool
    credit: float
    final: float
    episode_return: float  # final minus the step costs of its tokens
    steps: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def explain_rewards(target: str, answers: list[str], names: list[str]) -> list[RewardRow]:
    """Every (reward, answer) pair scored by the same code the environment uses."""
    target_tokens = tokenize(target)
    answer_tokens = [tokenize(a) for a in answers]
    vocab = Vocabulary([*target_tokens, *(t for toks in answer_tokens for t in toks)])
    ids = [
        torch.tensor(vocab.encode(t)[0], dtype=torch.long) for t in [target_tokens, *answer_tokens]
    ]
    padded = pad_sequence(ids, batch_first=True)  # [1 + N, width]: the target, then the answers
    n = len(answers)
    ans, tgt = padded[1:], padded[:1].repeat(n, 1)
    ans_len = torch.tensor([len(a) for a in answer_tokens], dtype=torch.long)
    tgt_len = torch.full((n,), len(target_tokens), dtype=torch.long)
    rows = []
    for name in names:
        s = RewardSpec(name=name)
        final, exact, credit = s.score(ans, ans_len, tgt, tgt_len)
        rows += [
            RewardRow(
                reward=name,
                target=detokenize(target_tokens),
                answer=detokenize(toks),
                kind=answer_kind(toks, target_tokens),
                exact=bool(exact[i]),
                credit=round(float(credit[i]), 4),
                final=round(float(final[i]), 4),
                # k words take k + 1 steps (the last one says <END>), each but the last costs
                episode_return=round(float(final[i]) - s.step_penalty * len(toks), 4),
                steps=len(toks) + 1,
            )
            for i, toks in enumerate(answer_tokens)
        ]
    return rows


def default_answers(target: str) -> tuple[str, ...]:
    """What --answer defaults to for a --target of one's own: the right answer and a hedge
    around it (two wrong guesses beside it), plus for several words the reordered and the
    partial ones, so each kind of answer the rewards differ on gets a row."""
    words = tokenize(target)
    answers = [" ".join(words), " ".join(["Oslo", *words, "Lima"])]
    if len(words) > 1:
        answers += [" ".join(reversed(words)), words[0]]
    return tuple(answers)


DEFAULT_EXAMPLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Warsaw", ("Warsaw", "Helsinki Warsaw Ankara Warsaw", "Helsinki")),
    ("Buenos Aires", ("Buenos Aires", "Aires Buenos", "Buenos", "Buenos Aires Buenos")),
)
