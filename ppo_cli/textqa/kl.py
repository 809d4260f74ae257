"""The KL penalty of RLHF: per-token estimators and the coefficient controllers.

The policy is kept near a frozen reference by paying `-kl_coef * KL_t` at every generated
token, KL_t estimated from the one sampled token (John Schulman, "Approximating KL
divergence", 2020); the task score is added at the last token, as TRL's PPO trainer does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def kl_k1(logprob: torch.Tensor, ref_logprob: torch.Tensor) -> torch.Tensor:
    """Per-sample k1 = logp - logp_ref: unbiased, negative on some samples (TRL's default)."""
    return logprob - ref_logprob


def kl_k3(logprob: torch.Tensor, ref_logprob: torch.Tensor) -> torch.Tensor:
    """Per-sample k3 = (r - 1) - log r with r = p_ref / p: unbiased, never negative, lower
    variance."""
    log_r = ref_logprob - logprob
    return torch.expm1(log_r) - log_r


def kl_estimate(logprob: torch.Tensor, ref_logprob: torch.Tensor, estimator: str) -> torch.Tensor:
    """The chosen estimator (k1 or k3: config.py refuses others), elementwise (shape of logprob)."""
    return kl_k1(logprob, ref_logprob) if estimator == "k1" else kl_k3(logprob, ref_logprob)


def exact_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Closed-form KL(pi || pi_ref) over the last dimension, for checks and teaching."""
    logp = torch.log_softmax(logits, -1)
    return (logp.exp() * (logp - torch.log_softmax(ref_logits, -1))).sum(-1)


@dataclass
class KLController:
    """The coefficient in force: fixed, or adapted toward a target KL by Ziegler et al. 2019
    (eq. 2, as TRL's AdaptiveKLController): at most 20 % * episodes / horizon per update."""

    value: float
    target: float | None = None
    horizon: int = 640

    @property
    def adaptive(self) -> bool:
        return self.target is not None

    def update(self, current_kl: float, n_episodes: int) -> float:
        """Adapt after an iteration (no change for a fixed coefficient); returns the new value."""
        if self.target is None or not math.isfinite(current_kl):
            return self.value
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_episodes / self.horizon
        return self.value


def per_token_rewards(
    score: torch.Tensor, kl: torch.Tensor, kl_coef: float, mask: torch.Tensor
) -> torch.Tensor:
    """[N, T] rewards of RLHF: the environment's reward per step minus kl_coef * KL_t."""
    return (score - kl_coef * kl) * mask
