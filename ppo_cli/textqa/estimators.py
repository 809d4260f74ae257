"""Advantage estimators for text QA: PPO's GAE beside the critic-free methods of RL for
language models, each a pure function over one iteration's completions.

GAE asks a learned critic V(s_t) how much better than expected a completion was; the others
build the baseline from the batch itself. A group is the G completions sampled for one
question in one iteration (--group-size); a group estimator gives every token of a completion
its completion's advantage, and a group whose completions all earned the same gets 0.
ppo_cli.config.ESTIMATORS holds each one's documented defaults.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from ppo_cli.core.gae import compute_gae, normalize

NAMES = ("gae", "grpo", "dr_grpo", "rloo", "reinforce_pp")
CRITIC = ("gae",)  # the only one that trains and runs the value head


class GroupStats(NamedTuple):
    """Per completion [N]: its group's mean, std (unbiased) and size, and the mean of the
    others in its group (RLOO's baseline)."""

    mean: torch.Tensor
    std: torch.Tensor
    size: torch.Tensor
    loo_mean: torch.Tensor


def group_stats(returns: torch.Tensor, groups: torch.Tensor) -> GroupStats:
    """Statistics of each completion's group; returns [N] float, groups [N] long ids."""
    n_groups = int(groups.max()) + 1 if groups.numel() else 0
    count = torch.zeros(n_groups).index_add_(0, groups, torch.ones_like(returns))
    total = torch.zeros(n_groups).index_add_(0, groups, returns)
    mean = total / count.clamp(min=1)
    sq = torch.zeros(n_groups).index_add_(0, groups, (returns - mean[groups]) ** 2)
    std = (sq / (count - 1).clamp(min=1)).sqrt()
    size = count[groups]
    loo = (total[groups] - returns) / (size - 1).clamp(min=1)
    return GroupStats(mean[groups], std[groups], size, loo)


def grpo(returns: torch.Tensor, groups: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """GRPO's group z-score (Shao et al. 2024, DeepSeekMath; TRL's GRPOTrainer with
    scale_rewards="group", eps 1e-4): [N] advantage per completion. The std division makes a
    group of nearly-equal rewards shout as loud as a group of very different ones."""
    s = group_stats(returns, groups)
    adv = (returns - s.mean) / (s.std + eps)
    return torch.where(s.size > 1, adv, torch.zeros_like(adv))


def dr_grpo(returns: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training"): the group mean as
    baseline without the std division, which they show biases GRPO toward questions that are
    too easy or too hard; [N]."""
    s = group_stats(returns, groups)
    return torch.where(s.size > 1, returns - s.mean, torch.zeros_like(returns))


def rloo(returns: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """REINFORCE Leave-One-Out (Ahmadian et al. 2024, "Back to Basics"; Kool et al. 2019): the
    baseline of a completion is the mean of the OTHER completions of its question, so it does
    not depend on the completion itself (unbiased); equals G/(G-1) times Dr. GRPO's; [N]."""
    s = group_stats(returns, groups)
    return torch.where(s.size > 1, returns - s.loo_mean, torch.zeros_like(returns))


def returns_to_go(rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """G_t = sum_{k >= t} gamma^(k-t) r_k along each row of [N, T]; 0 on padded steps."""
    rewards = rewards * mask
    out = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0])
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        out[:, t] = running
    return out * mask


def reinforce_pp(rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """REINFORCE++ (Hu 2025, OpenRLHF's `reinforce`): the return-to-go of the per-token rewards
    (KL penalty included when it sits in the reward), normalized over every real token of the
    whole batch: the batch is the baseline, no critic and no groups; [N, T]."""
    return normalize(returns_to_go(rewards, mask, gamma), mask)


class Advantages(NamedTuple):
    """What an estimator gives the update: advantages and value targets [N, T] (returns is
    GAE's A + V; the critic-free estimators' returns are the returns-to-go, never learned)."""

    advantages: torch.Tensor
    returns: torch.Tensor


def compute(
    name: str,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    groups: torch.Tensor,
    values: torch.Tensor | None = None,
    dones: torch.Tensor | None = None,
    gamma: float = 0.99,
    gae_lambda: float = 0.95,
) -> Advantages:
    """The advantage of every real step [N, T] under estimator `name`; groups: [N] the group
    id of each completion; values, dones: for gae only."""
    mask_f = mask.float()
    if name == "gae":
        assert values is not None and dones is not None
        g = compute_gae(rewards.T, values.T * mask_f.T, dones.T, 0.0, gamma, gae_lambda)
        return Advantages(g.advantages.T * mask_f, g.returns.T * mask_f)
    rtg = returns_to_go(rewards, mask_f, 1.0)
    if name == "reinforce_pp":
        return Advantages(normalize(rtg, mask_f), rtg)  # reinforce_pp, from the same rtg
    episode = (rewards * mask_f).sum(1)  # [N] the completion's reward R_i
    # `group`: the first release's name for GRPO's z-score (config.py refuses unknown names)
    per = {"grpo": grpo, "group": grpo, "dr_grpo": dr_grpo, "rloo": rloo}
    return Advantages(per[name](episode, groups).unsqueeze(1) * mask_f, rtg)


def group_ids(num_groups: int, group_size: int) -> torch.Tensor:
    """[num_groups * group_size] ids: 0 0 ... 1 1 ..., completions of one group side by side."""
    return torch.arange(num_groups).repeat_interleave(group_size)


def trl_metrics(rollout: Any, stats: dict[str, Any], groups: torch.Tensor | None) -> dict[str, Any]:
    """The iteration's numbers under the names TRL's trainers log (reward before any KL
    penalty, reward_std within groups as TRL's GRPO, ...), over the sampled completions only,
    not the answers replayed from memory after them."""
    n = rollout.num_episodes  # the sampled rows (replayed ones follow them)
    mask = rollout.mask[:n]
    score = (rollout.scores if rollout.scores is not None else rollout.rewards)[:n]
    per = (score * mask).sum(1)  # [n] each completion's score
    out: dict[str, Any] = {"reward": float(per.mean())}
    if groups is None:
        out["reward_std"] = float(per.std()) if per.numel() > 1 else 0.0
    else:
        std = group_stats(per, groups).std  # [N], each completion's group's
        first = torch.ones_like(groups, dtype=torch.bool)
        first[1:] = groups[1:] != groups[:-1]  # one entry per group
        out["reward_std"] = float(std[first].mean())
        out["frac_reward_zero_std"] = float((std[first] < 1e-6).float().mean())
    out["clip_ratio"] = stats["clipfrac"]
    out["completions/mean_length"] = float(mask.sum(1).float().mean())
    return out


def extend_groups(groups: torch.Tensor, question_idx: torch.Tensor) -> torch.Tensor:
    """Group ids [N] for a batch whose rows after len(groups) are answers replayed from
    memory: each joins the first group that asked its question, so a group estimator compares
    it with that question's samples; a question no group asked gets a group of its own."""
    n = groups.numel()
    if question_idx.numel() == n:
        return groups
    out = groups.tolist()
    first: dict[int, int] = {}
    for q, g in zip(question_idx[:n].tolist(), out, strict=True):
        first.setdefault(q, g)
    fresh = max(out, default=-1) + 1
    for q in question_idx[n:].tolist():
        if q not in first:
            first[q], fresh = fresh, fresh + 1
        out.append(first[q])
    return torch.tensor(out, dtype=torch.long)
