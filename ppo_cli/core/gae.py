"""Generalized Advantage Estimation (Schulman et al., 2016) as one pure function, which training
and `ppoqa explain-gae` both call."""

from __future__ import annotations

from typing import NamedTuple

import torch


class GAEResult(NamedTuple):
    advantages: torch.Tensor  # [T, ...] A_t = sum_k (gamma*lam)^k delta_{t+k}
    returns: torch.Tensor  # [T, ...] A_t + V(s_t): the value target
    deltas: torch.Tensor  # [T, ...] r_t + gamma*V(s_{t+1})*(1-done_t) - V(s_t)
    next_values: torch.Tensor  # [T, ...] V(s_{t+1}) as used, 0 after a terminal step


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor | float = 0.0,
    gamma: float = 0.99,
    gae_lambda: float = 0.95,
) -> GAEResult:
    """Advantages and returns for time-major tensors [T, ...]. dones[t] = 1 ends the episode at
    step t (no bootstrap, the running sum restarts); last_value is V(s_T). A truncation is the
    caller's: gamma * V(final observation) added to that step's reward, marked done (as SB3)."""
    rewards = rewards.float()
    values = values.float()
    not_done = 1.0 - dones.float()
    last = torch.as_tensor(last_value, dtype=torch.float32).expand_as(values[0])
    next_values = torch.cat([values[1:], last.unsqueeze(0)], dim=0) * not_done
    deltas = rewards + gamma * next_values - values
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * gae_lambda * not_done[t] * running
        advantages[t] = running
    return GAEResult(advantages, advantages + values, deltas, next_values)


def normalize(x: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / (std + eps) over the valid entries; padding stays out of the statistics."""
    mask = torch.ones_like(x, dtype=torch.bool) if mask is None else mask.bool()
    valid = x[mask]
    if valid.numel() < 2:
        return torch.where(mask, x - valid.mean() if valid.numel() else x, torch.zeros_like(x))
    mean, std = valid.mean(), valid.std()
    return torch.where(mask, (x - mean) / (std + eps), torch.zeros_like(x))
