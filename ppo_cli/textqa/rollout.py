"""Text QA's rollout storage and collection, and its to_batch(): a batch of whole episodes as
padded tensors; rows are episodes and columns are steps, and `mask` marks the steps that really
happened, so padding after <END> never reaches a loss or an advantage statistic.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields

import torch

from ppo_cli.core.gae import compute_gae
from ppo_cli.core.policy import ActorCritic
from ppo_cli.core.ppo import Batch
from ppo_cli.textqa.data import PAD_ID
from ppo_cli.textqa.env import TextQAVecEnv


@dataclass
class TextRollout:
    """One iteration of generated episodes. Shapes: N episodes, P prompt, T max steps."""

    question_idx: torch.Tensor  # [N]
    tokens: torch.Tensor  # [N, P + T - 1] prompt then generated ids (<PAD> after the end)
    actions: torch.Tensor  # [N, T]
    logprobs: torch.Tensor  # [N, T]
    values: torch.Tensor  # [N, T]
    rewards: torch.Tensor  # [N, T]
    dones: torch.Tensor  # [N, T] 1 at the step the episode ended
    mask: torch.Tensor  # [N, T] bool, step happened
    exact: torch.Tensor  # [N] bool
    answer: torch.Tensor  # [N, T] answer ids without <END>
    answer_len: torch.Tensor  # [N]
    # RLHF (ppo_cli.textqa.rlhf.apply_kl_penalty): rewards then hold score - kl_coef * kl
    scores: torch.Tensor | None = None  # [N, T] the environment's rewards before the penalty
    kl: torch.Tensor | None = None  # [N, T] per-token KL estimates to the reference
    kl_coef: float | None = None  # the coefficient that was applied
    ref_logprobs: torch.Tensor | None = None  # [N, T] log pi_ref, for --kl-in loss
    # rows at the end that replay remembered answers (ppo_cli.textqa.answer_memory), not samples
    num_replayed: int = 0

    @property
    def num_episodes(self) -> int:
        """Episodes the policy sampled (rows of the batch less the replayed ones)."""
        return self.question_idx.shape[0] - self.num_replayed

    def cat(self, replayed: TextRollout) -> TextRollout:
        """This rollout with `replayed`'s episodes appended as replayed rows."""
        names = [f.name for f in fields(self) if f.default is MISSING]  # the per-episode tensors
        both = {n: torch.cat([getattr(self, n), getattr(replayed, n)]) for n in names}
        return TextRollout(**both, num_replayed=self.num_replayed + replayed.num_episodes)

    @property
    def num_steps(self) -> int:
        return int(self.mask.sum())

    @property
    def episode_returns(self) -> torch.Tensor:
        return (self.rewards * self.mask).sum(1)

    def to_batch(self, gamma: float, gae_lambda: float) -> tuple[Batch, torch.Tensor]:
        """GAE over each episode (time-major inside compute_gae); returns the batch and deltas."""
        gae = compute_gae(
            self.rewards.T, self.values.T * self.mask.T, self.dones.T, 0.0, gamma, gae_lambda
        )
        adv, ret = gae.advantages.T * self.mask, gae.returns.T * self.mask
        parts = (self.tokens, self.actions, self.logprobs, self.values, adv, ret, self.mask)
        return Batch(*parts, groups=self.question_idx), gae.deltas.T * self.mask


@torch.no_grad()
def collect_text_episodes(
    policy: ActorCritic,
    venv: TextQAVecEnv,
    question_idx: torch.Tensor,
    greedy: bool = False,
    prompts: torch.Tensor | None = None,
    force: torch.Tensor | None = None,
) -> TextRollout:
    """Generate one episode per question index, all in lockstep, one token per step. force
    [N, T]: tokens to take instead of choosing (<PAD>: the policy chooses), their log-probs and
    values recorded as if sampled (a replayed answer, an exploration probe)."""
    prompts = venv.reset(question_idx, prompts)  # [N, P]
    n, p = prompts.shape
    t_max = venv.task.max_steps
    tokens = torch.full((n, p + t_max - 1), PAD_ID, dtype=torch.long)
    tokens[:, :p] = prompts
    actions = torch.full((n, t_max), PAD_ID, dtype=torch.long)
    logprobs, values, rewards, dones = (torch.zeros(n, t_max) for _ in range(4))
    mask = torch.zeros(n, t_max, dtype=torch.bool)
    memory = None  # what the policy carries between steps (the LSTM's state)
    for t in range(t_max):
        active = ~venv.done
        if not active.any():
            break
        forced = None if force is None else force[:, t]
        action, logprob, value, memory = policy.act_step(tokens[:, : p + t], greedy, memory, forced)
        action = torch.where(active, action, PAD_ID)
        reward, ended = venv.step(action)
        mask[:, t] = active
        actions[:, t] = action
        logprobs[:, t] = torch.where(active, logprob, 0.0)
        values[:, t] = torch.where(active, value, 0.0)
        rewards[:, t] = reward
        dones[:, t] = ended.float()
        if t + 1 < t_max:
            tokens[:, p + t] = torch.where(active & ~ended, action, PAD_ID)
    outcome = (venv.exact.clone(), venv.answer.clone(), venv.answer_len.clone())
    return TextRollout(
        question_idx, tokens, actions, logprobs, values, rewards, dones, mask, *outcome
    )
