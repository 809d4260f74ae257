"""Text policies: read a token sequence and decide at its last position(s) (LSTM, Transformer)."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from ppo_cli.core.policy import NEG, ActorCritic, FastCategorical, orthogonal
from ppo_cli.textqa.data import END_ID, PAD_ID, START_ID
from ppo_cli.textqa.env import BANNED_ACTIONS


def start_columns(tokens: torch.Tensor) -> torch.Tensor:
    """[B] column of each row's <START>: where its prompt ends and its answer begins."""
    return (tokens == START_ID).long().argmax(1)


def distinct_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(distinct rows [U, L], inverse [B]) with rows == distinct[inverse], as
    torch.unique(rows, dim=0, return_inverse=True) gives, without its row sort (paid on
    every forward pass): rows are grouped by a polynomial hash
    and the grouping is checked; a collision falls back to torch.unique."""
    keys, inverse = torch.unique((rows * _hash_weights(rows.shape[1])).sum(1), return_inverse=True)
    first = torch.full((keys.numel(),), rows.shape[0], dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(rows.shape[0]), "amin")
    distinct = rows[first]
    if not torch.equal(distinct[inverse], rows):
        return torch.unique(rows, dim=0, return_inverse=True)
    return distinct, inverse


def sample_rows(probs: torch.Tensor) -> torch.Tensor:
    """One index per row of probs [B, A], drawn with those probabilities by inverting the
    cumulative sum (torch.multinomial is an order of magnitude slower on a rollout). The
    uniform draw is kept below each row's total, so the index found always has p > 0."""
    cdf = probs.cumsum(-1)
    total = cdf[:, -1:]
    u = torch.rand(total.shape, dtype=probs.dtype, device=probs.device) * total
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, u, right=True).squeeze(-1)


@functools.cache
def _hash_weights(length: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(length)  # its own: training's RNG is untouched
    return torch.randint(1, 2**31, (length,), generator=generator, dtype=torch.long)


class TextActorCritic(ActorCritic):
    """Shared pieces of the text policies: token embedding, heads, banned-action mask. A
    subclass's `encode(tokens [B, L]) -> hidden [B, L, H]` is causal (position i sees tokens
    0..i), so the last prompt position gives the first decision and one forward pass scores a
    whole episode in the update."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int = 64,
        answer_vocab: list[int] | None = None,
        answer_positions: list[list[int]] | None = None,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, hidden_size, padding_idx=0)
        self.actor = orthogonal(nn.Linear(hidden_size, vocab_size), 0.01)
        self.critic = orthogonal(nn.Linear(hidden_size, 1), 1.0)
        mask = torch.zeros(vocab_size)
        mask[[a for a in BANNED_ACTIONS if a < vocab_size]] = NEG
        end = torch.arange(vocab_size) == END_ID
        self.register_buffer("end_onehot", end, persistent=False)
        # --answer-positions: answer token k may only be an id (<END> among them) that some
        # answer has as its token k; every target stays reachable.
        self.answer_positions = (
            [sorted(set(ids)) for ids in answer_positions] if answer_positions else None
        )
        by_pos = None
        if self.answer_positions is not None:
            by_pos = torch.full((len(self.answer_positions), vocab_size), NEG)
            for k, ids in enumerate(self.answer_positions):
                by_pos[k, [a for a in ids if a < vocab_size]] = 0.0
        self.register_buffer("position_mask", by_pos, persistent=False)
        # --answer-vocab: only answer words and <END> may be generated. act and evaluate then
        # build their distribution over these few columns (the others have p = 0), a fraction
        # of the softmax work when the vocabulary is mostly question words.
        self.answer_vocab = sorted(set(answer_vocab)) if answer_vocab is not None else None
        if self.answer_vocab is not None:
            allowed = torch.zeros(vocab_size, dtype=torch.bool)
            allowed[[a for a in self.answer_vocab if a < vocab_size] + [END_ID]] = True
            mask = mask.masked_fill(~allowed, NEG)
            ids = allowed.nonzero().flatten()
            index_of = torch.zeros(vocab_size, dtype=torch.long)
            index_of[ids] = torch.arange(ids.numel())
            self.register_buffer("allowed_ids", ids, persistent=False)
            self.register_buffer("index_of", index_of, persistent=False)
            self.register_buffer("allowed_action_mask", mask[ids], persistent=False)
            self.register_buffer("allowed_end_onehot", end[ids], persistent=False)
            # the action mask folded into the per-step table: one add per decision
            allowed_by_pos = None if by_pos is None else by_pos[:, ids] + mask[ids]
            self.register_buffer("allowed_position_mask", allowed_by_pos, persistent=False)
        self.register_buffer("action_mask", mask, persistent=False)
        # step 0 never allowing <END> in the table makes _first's mask redundant there
        self.first_in_table = bool(
            self.answer_positions is not None and END_ID not in self.answer_positions[0]
        )
        self.build_encoder()

    def build_encoder(self) -> None:
        """A subclass's encoder modules, made after the heads (the order they are initialized)."""

    # False for the critic-free estimators (ppo_cli.textqa.estimators): the value head is not run,
    # and V reads 0 everywhere (runtime only: a checkpoint's network is the same either way)
    use_critic = True

    def _value(self, hidden: torch.Tensor) -> torch.Tensor:
        """V at the hidden states [..., H] -> [...], or zeros without the critic."""
        if not self.use_critic:
            return hidden.new_zeros(hidden.shape[:-1])
        return self.critic(hidden).squeeze(-1)

    def encode_decisions(self, tokens: torch.Tensor, steps: int) -> torch.Tensor:
        """Hidden states [B, steps, H] of the last `steps` positions (the decisions)."""
        return self.encode(tokens)[:, -steps:]

    def decision_states(self, tokens: torch.Tensor, steps: int) -> torch.Tensor:
        """encode_decisions, reading each distinct sequence once: once a policy is sure of an
        answer, most episodes of a question are the same tokens (129 distinct of 968 at the
        end of a general_knowledge run), and the encoder is most of an update's time. Rows
        are independent, so the numbers (and gradients, summed over the copies) are the same."""
        rows, inverse = distinct_rows(tokens)
        if rows.shape[0] == tokens.shape[0]:
            return self.encode_decisions(tokens, steps)
        return self.encode_decisions(rows, steps)[inverse]

    def logits_values(
        self, obs: torch.Tensor, steps: int | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked logits [..., A] and values at the last decision, or the last `steps`."""
        hidden = self.decision_states(obs, 1 if steps is None else steps)  # [B, T, H]
        if steps is None:
            hidden = hidden[:, -1]  # [B, H]
        return self._decide(hidden, obs, steps, restrict=False), self._value(hidden)

    def _decide(
        self, hidden: torch.Tensor, obs: torch.Tensor, steps: int | None, restrict: bool
    ) -> torch.Tensor:
        """The masked logits for hidden states of obs's decision positions."""
        inputs = obs[:, -1] if steps is None else obs[:, -steps:]  # [B] or [B, T]
        answer_step = self._answer_step(obs, steps) if self.answer_positions else None
        if restrict:
            return self._allowed_logits(hidden, inputs, answer_step)
        logits = self.actor(hidden) + self.action_mask
        if answer_step is not None:
            logits = logits + self.position_mask[answer_step]
        return logits.masked_fill(self._first(inputs, self.end_onehot), NEG)

    def _first(self, inputs: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        """The first decision (input token <START>) may not be <END>: every dataset answer has
        at least one token, and an empty answer would be a trap of the walkthrough's rewards (-2.0
        for silence beats -2.1 for a wrong word, so a policy can learn to say nothing)."""
        return (inputs == START_ID).unsqueeze(-1) & end  # [..., A]

    def _allowed_logits(
        self, hidden: torch.Tensor, inputs: torch.Tensor, answer_step: torch.Tensor | None
    ) -> torch.Tensor:
        """Masked logits over the allowed_ids columns only, from those rows of the actor: the
        others are -1e9 in the full logits (probability 0, gradient 0)."""
        ids = self.allowed_ids
        weight, bias = self.actor.weight[ids], self.actor.bias[ids]
        logits = nn.functional.linear(hidden, weight, bias)
        if answer_step is None:
            logits = logits + self.allowed_action_mask
        else:  # the action mask is in the per-step table
            logits = logits + self.allowed_position_mask[answer_step]
            if self.first_in_table:
                return logits
        return logits.masked_fill(self._first(inputs, self.allowed_end_onehot), NEG)

    def act(
        self, obs: torch.Tensor, greedy: bool = False, force: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self._act_on(self.decision_states(obs, 1)[:, -1], obs, greedy, force)

    def act_step(
        self, obs: torch.Tensor, greedy: bool, memory: Any = None, force: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
        return (*self.act(obs, greedy, force), None)

    def decision_columns(self) -> torch.Tensor:
        """Token ids of the columns first_logits() returns (the answer vocabulary and <END>
        with --answer-vocab, else every id)."""
        return torch.arange(self.vocab_size) if self.answer_vocab is None else self.allowed_ids

    @torch.no_grad()
    def first_logits(self, prompts: torch.Tensor) -> torch.Tensor:
        """Masked logits [B, C] of the first answer token over decision_columns(): what the
        exploration probes choose among (ppo_cli.textqa.answer_memory)."""
        hidden = self.decision_states(prompts, 1)[:, -1]
        return self._decide(hidden, prompts, None, restrict=self.answer_vocab is not None)

    @staticmethod
    def _can_take(
        logits: torch.Tensor, column: torch.Tensor, force: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[B] where the forced token (column of logits; force: the ids, <PAD> = none) is one
        the policy could have chosen here: a masked one is never forced (its log-prob would
        be -1e9, and the answer one the policy cannot give)."""
        ids = column if force is None else force
        return (ids != PAD_ID) & (logits.gather(-1, column.unsqueeze(-1)).squeeze(-1) > NEG / 10)

    def _act_on(
        self,
        hidden: torch.Tensor,
        obs: torch.Tensor,
        greedy: bool,
        force: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """act() from the hidden state [B, H] at obs's last position. force [B]: token ids
        to take instead of choosing (<PAD> where the policy chooses), with their log-probs:
        a replayed answer is scored as the policy would have sampled it."""
        value = self._value(hidden)
        if self.answer_vocab is None:
            dist = FastCategorical(self._decide(hidden, obs, None, restrict=False))
            action = dist.logits.argmax(-1) if greedy else dist.sample()
            if force is not None:
                action = torch.where(self._can_take(dist.logits, force), force, action)
            return action, dist.log_prob(action), value
        logits = self._decide(hidden, obs, None, restrict=True)
        # What Categorical(logits).sample() and .log_prob() compute, without its logsumexp:
        # torch.exp and logsumexp take a slow path on the -1e9 of masked columns (underflow,
        # about 10x slower on this CPU); softmax and log_softmax do not.
        k = logits.argmax(-1) if greedy else sample_rows(torch.softmax(logits, -1))
        if force is not None:
            column = self.index_of[force]
            k = torch.where(self._can_take(logits, column, force), column, k)
        logprob = torch.log_softmax(logits, -1).gather(-1, k.unsqueeze(-1)).squeeze(-1)
        return self.allowed_ids[k], logprob, value

    def evaluate(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As ActorCritic.evaluate, with the policy head on the real steps only: padded steps
        (action <PAD>, never a real action) get log-prob and entropy 0, which every loss masks
        out anyway. Once answers are short, most of an episode's columns are padding."""
        if self.answer_vocab is None:
            return super().evaluate(obs, actions)
        steps = actions.shape[1]
        hidden = self.decision_states(obs, steps)  # [B, T, H]
        value = self._value(hidden)
        real = actions != PAD_ID  # [B, T]
        answer_step = self._answer_step(obs, steps)[real] if self.answer_positions else None
        logits = self._allowed_logits(hidden[real], obs[:, -steps:][real], answer_step)
        logp = torch.log_softmax(logits, -1)  # [n, A]
        chosen = logp.gather(-1, self.index_of[actions[real]].unsqueeze(-1)).squeeze(-1)
        ent = -(torch.softmax(logits, -1) * logp).sum(-1)  # softmax, not logp.exp(): see act
        logprob = value.new_zeros(actions.shape).masked_scatter(real, chosen)
        entropy = value.new_zeros(actions.shape).masked_scatter(real, ent)
        return logprob, entropy, value

    def _answer_step(self, obs: torch.Tensor, steps: int | None) -> torch.Tensor:
        """Index of the answer token each decision chooses: 0 at <START>; [B] or [B, T]."""
        length = obs.shape[1]
        start_col = start_columns(obs)  # [B]
        last = len(self.answer_positions or ()) - 1
        if steps is None:
            return (length - 1 - start_col).clamp(0, last)
        cols = torch.arange(length - steps, length, device=obs.device)  # [T]
        return (cols.unsqueeze(0) - start_col.unsqueeze(1)).clamp(0, last)

    def spec(self) -> dict[str, Any]:
        spec = {"kind": self.kind, "vocab_size": self.vocab_size, "hidden_size": self.hidden_size}
        if self.answer_vocab is not None:
            spec["answer_vocab"] = list(self.answer_vocab)
        if self.answer_positions is not None:
            spec["answer_positions"] = [list(ids) for ids in self.answer_positions]
        return spec


class LSTMActorCritic(TextActorCritic):
    """The walkthrough's network: token embedding -> LSTM -> policy head and value head."""

    kind = "lstm"

    def build_encoder(self) -> None:
        self.lstm = nn.LSTM(self.hidden_size, self.hidden_size, batch_first=True)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(tokens))
        return out

    def act_step(
        self, obs: torch.Tensor, greedy: bool, memory: Any = None, force: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
        """The LSTM carries its (h, c) from step to step: each generation step reads one
        token instead of the whole prefix again (the same numbers as act(obs))."""
        if memory is None:  # obs is the prompts: read each distinct one once
            prompts, inverse = distinct_rows(obs)
            out, (h, c) = self.lstm(self.embedding(prompts))
            hidden, memory = out[inverse, -1], (h[:, inverse], c[:, inverse])
        else:
            out, memory = self.lstm(self.embedding(obs[:, -1:]), memory)
            hidden = out[:, -1]
        return (*self._act_on(hidden, obs, greedy, force), memory)

    def encode_decisions(self, tokens: torch.Tensor, steps: int) -> torch.Tensor:
        """The same numbers as encode(tokens)[:, -steps:], cheaper: a batch holds several
        episodes of each question (8 by default), so the LSTM reads each distinct prompt once
        and runs on from its state for every episode's answer tokens. The prompt is most of the
        sequence, so this halves the time of an update (and of a rollout step)."""
        length = tokens.shape[1]
        start = start_columns(tokens)  # [B]
        p = int(start[0]) + 1  # prompt length, <START> included
        if length - p + 1 < steps or not bool((start == start[0]).all()):
            return super().encode_decisions(tokens, steps)
        prompts, inverse = distinct_rows(tokens[:, :p])
        if prompts.shape[0] == tokens.shape[0]:
            return super().encode_decisions(tokens, steps)
        out, (h, c) = self.lstm(self.embedding(prompts))  # [U, p, H]
        first = out[inverse, -1:]  # [B, 1, H] the output at <START>
        if length == p:
            return first[:, -steps:]
        rest, _ = self.lstm(self.embedding(tokens[:, p:]), (h[:, inverse], c[:, inverse]))
        return torch.cat([first, rest], dim=1)[:, -steps:]  # [B, steps, H]


class TransformerActorCritic(TextActorCritic):
    """Token + position embeddings and a causal self-attention encoder; <PAD> keys are masked."""

    kind = "transformer"

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        max_len: int = 256,
        answer_vocab: list[int] | None = None,
        answer_positions: list[list[int]] | None = None,
    ) -> None:
        super().__init__(vocab_size, hidden_size, answer_vocab, answer_positions)
        self.num_layers, self.num_heads, self.max_len = num_layers, num_heads, max_len
        self.position = nn.Embedding(max_len, hidden_size)
        layer = nn.TransformerEncoderLayer(
            hidden_size,
            num_heads,
            dim_feedforward=2 * hidden_size,
            dropout=0.0,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_size)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        pad = tokens == PAD_ID  # [B, L]
        # Positions are counted from the <START> token (question before it, answer after it,
        # centred in the table): the same question gets the same positions however much left
        # padding its batch needs (e.g. `ask` with one short question), and the answer step
        # index, which decides when to say <END>, is explicit.
        start_col = start_columns(tokens).unsqueeze(1)  # [B, 1]
        cols = torch.arange(length, device=tokens.device).unsqueeze(0)  # [1, L]
        pos = (cols - start_col + self.max_len // 2).clamp(0, self.max_len - 1)  # [B, L]
        x = self.embedding(tokens) + self.position(pos)
        causal = torch.triu(
            torch.full((length, length), float("-inf"), device=tokens.device), diagonal=1
        )
        # Left padding: a real token may not attend to <PAD>; a <PAD> row attends to itself so
        # softmax never sees an all -inf row.
        key_block = pad.unsqueeze(1) & ~torch.eye(length, dtype=torch.bool, device=tokens.device)
        mask = causal.unsqueeze(0).masked_fill(key_block, float("-inf"))
        mask = mask.repeat_interleave(self.num_heads, dim=0)
        return self.norm(self.encoder(x, mask=mask))

    def spec(self) -> dict[str, Any]:
        return super().spec() | {"num_layers": self.num_layers, "num_heads": self.num_heads}


_KINDS = {c.kind: c for c in (LSTMActorCritic, TransformerActorCritic)}


def build_policy(spec: dict[str, Any]) -> ActorCritic:
    """Rebuild a network from its spec (as stored in a checkpoint)."""
    args = dict(spec)
    return _KINDS[args.pop("kind")](**args)
