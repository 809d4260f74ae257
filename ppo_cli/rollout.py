"""Rollout storage and collection for text QA: a batch of whole episodes as padded tensors.

Rows are episodes and columns are steps; `mask` marks the steps that really happened, so
padding after <END> never reaches a loss or an advantage statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ppo_cli.data import PAD_ID
from ppo_cli.envs.text_qa_vec import TextQAVecEnv
from ppo_cli.gae import compute_gae
from ppo_cli.policies import ActorCritic


@dataclass
class Batch:
    """What the PPO update consumes; every tensor's first dimension indexes samples.

    For text QA a sample is an episode (tensors [N, T] with a mask); for gymnasium a sample is
    one step (tensors [N], mask all ones).
    """

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    mask: torch.Tensor

    @property
    def size(self) -> int:
        return self.actions.shape[0]

    def __getitem__(self, idx: torch.Tensor) -> Batch:
        return Batch(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


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
    # RLHF (ppo_cli.rlhf.apply_kl_penalty): rewards then hold score - kl_coef * kl
    scores: torch.Tensor | None = None  # [N, T] the environment's rewards before the penalty
    kl: torch.Tensor | None = None  # [N, T] per-token KL estimates to the reference
    kl_coef: float | None = None  # the coefficient that was applied

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
        batch = Batch(
            obs=self.tokens,
            actions=self.actions,
            logprobs=self.logprobs,
            values=self.values,
            advantages=adv,
            returns=ret,
            mask=self.mask,
        )
        return batch, gae.deltas.T * self.mask


@torch.no_grad()
def collect_text_episodes(
    policy: ActorCritic,
    venv: TextQAVecEnv,
    question_idx: torch.Tensor,
    greedy: bool = False,
    prompts: torch.Tensor | None = None,
) -> TextRollout:
    """Generate one episode per question index, all in lockstep, one token per step."""
    prompts = venv.reset(question_idx, prompts)  # [N, P]
    n, p = prompts.shape
    t_max = venv.max_steps
    tokens = torch.full((n, p + t_max - 1), PAD_ID, dtype=torch.long)
    tokens[:, :p] = prompts
    actions = torch.full((n, t_max), PAD_ID, dtype=torch.long)
    logprobs = torch.zeros(n, t_max)
    values = torch.zeros(n, t_max)
    rewards = torch.zeros(n, t_max)
    dones = torch.zeros(n, t_max)
    mask = torch.zeros(n, t_max, dtype=torch.bool)
    for t in range(t_max):
        active = ~venv.done
        if not active.any():
            break
        action, logprob, value = policy.act(tokens[:, : p + t], greedy=greedy)
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
    return TextRollout(
        question_idx=question_idx,
        tokens=tokens,
        actions=actions,
        logprobs=logprobs,
        values=values,
        rewards=rewards,
        dones=dones,
        mask=mask,
        exact=venv.exact.clone(),
        answer=venv.answer.clone(),
        answer_len=venv.answer_len.clone(),
    )
