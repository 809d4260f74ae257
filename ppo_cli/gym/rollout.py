"""Gymnasium's rollout storage and collection, and its to_batch(): mask, bootstrap, then GAE.

Time-major [T, N] steps of a NEXT_STEP vector env, flattened to one sample per valid step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ppo_cli.core.gae import GAEResult, compute_gae
from ppo_cli.core.policy import ActorCritic
from ppo_cli.core.ppo import Batch
from ppo_cli.gym.envs import EnvInfo, EpisodeTracker, action_mask_from_info
from ppo_cli.gym.normalize import Normalizer


@dataclass
class GymRollout:
    """One iteration of experience, time-major. T = num_steps, N = num_envs, D = obs_dim."""

    obs: torch.Tensor  # [T, N, D] observation the action was chosen from (normalized if on)
    actions: torch.Tensor  # [T, N] long, [T, N, K] long (MultiDiscrete), [T, N, A] float (Box)
    logprobs: torch.Tensor  # [T, N]
    values: torch.Tensor  # [T, N] V(obs)
    rewards: torch.Tensor  # [T, N] as learned from (scaled when norm_reward is on)
    terminated: torch.Tensor  # [T, N] bool: the MDP ended (no bootstrap)
    truncated: torch.Tensor  # [T, N] bool: cut by a time limit (bootstrap V(final obs))
    valid: torch.Tensor  # [T, N] bool: False on NEXT_STEP reset steps (not a transition)
    last_value: torch.Tensor  # [N] V(obs after the last step)
    finished: list[tuple[int, float, int]] = field(default_factory=list)  # (env, return, length)
    action_masks: torch.Tensor | None = None  # [T, N, A] bool: allowed actions (action_mask on)

    def advantages(self, gamma: float, gae_lambda: float, reward_scale: float = 1.0) -> GAEResult:
        """GAE with SB3's truncation rule: a step cut by the time limit gets gamma * V(final obs)
        added to its reward, which NEXT_STEP autoreset stores as the next step's observation."""
        next_values = torch.cat([self.values[1:], self.last_value.unsqueeze(0)])  # [T, N]
        bootstrap = (self.truncated & ~self.terminated & self.valid).float()  # [T, N]
        rewards = reward_scale * self.rewards + gamma * next_values * bootstrap  # [T, N]
        dones = self.terminated | self.truncated  # [T, N]
        return compute_gae(rewards, self.values, dones, self.last_value, gamma, gae_lambda)

    @property
    def num_episodes(self) -> int:
        return len(self.finished)

    @property
    def num_steps(self) -> int:
        """Environment steps taken (reset steps included: CleanRL's global_step)."""
        return self.rewards.numel()

    def to_batch(
        self, gamma: float, gae_lambda: float, reward_scale: float = 1.0
    ) -> tuple[Batch, torch.Tensor]:
        """Flatten the valid steps to 1-D samples (mask all ones) for ppo_update; returns the
        batch and the [T, N] TD residuals (for traces)."""
        gae = self.advantages(gamma, gae_lambda, reward_scale)
        v = self.valid
        per_step = (self.obs, self.actions, self.logprobs, self.values, gae.advantages, gae.returns)
        mask = torch.ones(int(v.sum()), dtype=torch.bool, device=v.device)
        action_mask = None if self.action_masks is None else self.action_masks[v]
        return Batch(*(x[v] for x in per_step), mask, action_mask), gae.deltas  # obs [B, D]


class GymCollector:
    """Steps a NEXT_STEP vector env with the policy; keeps the env state across iterations."""

    def __init__(
        self,
        envs: Any,
        info: EnvInfo,
        seed: int,
        device: torch.device,
        normalizer: Normalizer | None = None,
        use_action_mask: bool = False,
    ) -> None:
        self.envs, self.info, self.device = envs, info, device
        self.num_envs = envs.num_envs
        self.normalizer = normalizer or Normalizer(info.obs_dim, self.num_envs)
        self.use_mask = use_action_mask
        obs, infos = envs.reset(seed=seed)
        self.next_obs = self._obs_tensor(obs)  # [N, D]
        self.next_mask = self._mask(infos)  # [N, A] or None
        self.tracker = EpisodeTracker(self.num_envs)

    def _mask(self, infos: dict[str, Any]) -> torch.Tensor | None:
        """The allowed actions for next_obs (NEXT_STEP: the info returned with that obs)."""
        if not self.use_mask:
            return None
        return action_mask_from_info(infos, self.info, self.num_envs).to(self.device)

    def _obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        flat = np.asarray(obs, dtype=np.float32).reshape(self.num_envs, -1)
        return torch.from_numpy(self.normalizer.obs(flat)).to(self.device)

    @torch.no_grad()
    def collect(
        self, policy: ActorCritic, num_steps: int
    ) -> tuple[GymRollout, list[tuple[int, float, int]]]:
        """num_steps vector steps; returns the rollout and the episodes that ended in it."""
        t_, n, d, dev = num_steps, self.num_envs, self.info.obs_dim, self.device
        obs = torch.zeros(t_, n, d, device=dev)  # [T, N, D]
        box = self.info.action_kind == "box"
        shape = (t_, n) if self.info.action_kind == "discrete" else (t_, n, self.info.num_actions)
        actions = torch.zeros(shape, dtype=torch.float32 if box else torch.long, device=dev)
        logprobs, values = (torch.zeros(t_, n, device=dev) for _ in range(2))  # [T, N]
        rewards = np.zeros((t_, n), dtype=np.float32)  # [T, N]
        terminated, truncated, valid = (np.zeros((t_, n), dtype=bool) for _ in range(3))  # [T, N]
        finished: list[tuple[int, float, int]] = []
        masks = None  # [T, N, A] bool when the env's action masks are used
        if self.next_mask is not None:
            masks = torch.zeros(t_, *self.next_mask.shape, dtype=torch.bool, device=dev)
        for step in range(t_):
            obs[step] = self.next_obs
            valid[step] = self.tracker.valid
            masking = {} if masks is None else {"action_mask": self.next_mask}
            if masks is not None:
                masks[step] = self.next_mask
            action, logprob, value = policy.act(self.next_obs, **masking)
            actions[step], logprobs[step], values[step] = action, logprob, value
            env_action = self.info.to_env(action.cpu().numpy())  # offset, or clipped (Box)
            next_obs, reward, term, trunc, infos = self.envs.step(env_action)
            self.next_mask = self._mask(infos)
            terminated[step], truncated[step] = term, trunc
            done = np.logical_or(term, trunc)
            finished.extend(self.tracker.update(np.asarray(reward), done))  # raw rewards
            rewards[step] = self.normalizer.reward(np.asarray(reward), done, valid[step])
            self.next_obs = self._obs_tensor(next_obs)
        last_value = policy.get_value(self.next_obs)  # [N]
        flags = (torch.from_numpy(x).to(dev) for x in (rewards, terminated, truncated, valid))
        rollout = GymRollout(obs, actions, logprobs, values, *flags, last_value, finished, masks)
        return rollout, finished
