"""Observation normalization and reward scaling, as part of the run (like SB3's VecNormalize).

Rewards are divided by the running std of the discounted return, never shifted by its mean, so
a reward's sign never flips. The statistics are saved in the checkpoint and used frozen by
`eval`: a policy trained on normalized observations is meaningless without them."""

from __future__ import annotations

from typing import Any

import numpy as np

EPSILON = 1e-8


class RunningMeanStd:
    """Mean and variance of a stream of batches (Chan et al.'s parallel update), float64."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = 1e-4  # SB3's start: the first batch dominates at once

    def update(self, x: np.ndarray) -> None:
        """Fold in a batch x [B, *shape]."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] == 0:
            return
        b_mean, b_var, b_count = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": float(self.count)}

    def load(self, state: dict[str, Any]) -> None:
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.var = np.asarray(state["var"], dtype=np.float64)
        self.count = float(state["count"])


class Normalizer:
    """What the collector and the evaluators apply to observations and rewards (the identity,
    at no cost, with norm_obs and norm_reward off, so every run goes through the same code)."""

    def __init__(
        self,
        obs_dim: int,
        num_envs: int,
        norm_obs: bool = False,
        norm_reward: bool = False,
        gamma: float = 0.99,
    ) -> None:
        self.norm_obs, self.norm_reward = norm_obs, norm_reward
        self.gamma, self.clip_obs, self.clip_reward = gamma, 10.0, 10.0  # SB3's clips
        self.obs_rms = RunningMeanStd((obs_dim,))
        self.ret_rms = RunningMeanStd(())
        self.returns = np.zeros(num_envs, dtype=np.float64)  # [N] discounted return so far
        self.frozen = False

    def obs(self, obs: np.ndarray) -> np.ndarray:
        """obs [N, D] float32 -> normalized (stats updated first unless frozen)."""
        if not self.norm_obs:
            return obs
        if not self.frozen:
            self.obs_rms.update(obs)
        z = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + EPSILON)
        return np.clip(z, -self.clip_obs, self.clip_obs).astype(np.float32)

    def reward(self, reward: np.ndarray, done: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Rewards [N] of one vector step as PPO learns from them. Only real transitions
        (valid) enter the discounted return; it restarts after an episode ends."""
        if not self.norm_reward:
            return reward
        if not self.frozen:
            self.returns = np.where(valid, self.returns * self.gamma + reward, self.returns)
            self.ret_rms.update(self.returns[valid])
            self.returns[done & valid] = 0.0
        scaled = reward / np.sqrt(self.ret_rms.var + EPSILON)
        return np.clip(scaled, -self.clip_reward, self.clip_reward).astype(np.float32)

    def state(self) -> dict[str, Any]:
        """Plain values for the checkpoint (torch.load(weights_only=True) reads them)."""
        return {
            "norm_obs": self.norm_obs,
            "norm_reward": self.norm_reward,
            "clip_obs": self.clip_obs,
            "clip_reward": self.clip_reward,
            "obs_rms": self.obs_rms.state(),
            "ret_rms": self.ret_rms.state(),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.norm_obs, self.norm_reward = bool(state["norm_obs"]), bool(state["norm_reward"])
        self.clip_obs, self.clip_reward = float(state["clip_obs"]), float(state["clip_reward"])
        self.obs_rms.load(state["obs_rms"])
        self.ret_rms.load(state["ret_rms"])

    @classmethod
    def frozen_from(cls, state: dict[str, Any] | None, obs_dim: int, num_envs: int) -> Normalizer:
        """The evaluation side: a run's saved statistics, never updated (identity if None)."""
        norm = cls(obs_dim, num_envs)
        if state is not None:
            norm.load(state)
        norm.frozen = True
        return norm
