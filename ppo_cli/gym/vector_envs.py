"""numpy-vectorized versions of classic-control envs gymnasium ships only one copy at a time.

SyncVectorEnv steps its copies one by one in Python, which on a small network costs as much as
the policy. These step all copies at once and keep what a SyncVectorEnv of `gym.make(id)`
copies gives (NEXT_STEP autoreset, sub-env i seeded with seed + i, the time limit as
truncation, the same float arithmetic), so the same seeds give the same numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space


class PendulumVectorEnv(VectorEnv):
    """Pendulum-v1 (gymnasium.envs.classic_control.pendulum.PendulumEnv) for num_envs copies."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = 200, g: float = 10.0):
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.max_speed, self.max_torque, self.dt = 8, 2.0, 0.05
        self.g, self.m, self.l = g, 1.0, 1.0
        high = np.array([1.0, 1.0, self.max_speed], dtype=np.float32)
        self.single_action_space = spaces.Box(-self.max_torque, self.max_torque, (1,), np.float32)
        self.single_observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.th = np.zeros(num_envs, dtype=np.float64)  # [N] angle
        self.thdot = np.zeros(num_envs, dtype=np.float64)  # [N] angular velocity
        self.steps = np.zeros(num_envs, dtype=np.int64)  # [N] steps in the current episode
        self.prev_done = np.zeros(num_envs, dtype=bool)  # [N] reset on the next step
        self.rngs = [seeding.np_random()[0] for _ in range(num_envs)]

    def _reset_one(self, i: int) -> None:
        # PendulumEnv.reset: state = np_random.uniform(low=-high, high=high), high = [pi, 1]
        high = np.array([np.pi, 1.0])
        self.th[i], self.thdot[i] = self.rngs[i].uniform(low=-high, high=high)
        self.steps[i] = 0

    def _obs(self) -> np.ndarray:
        obs = np.empty((self.num_envs, 3), dtype=np.float32)  # [N, 3] cos, sin, velocity
        obs[:, 0], obs[:, 1], obs[:, 2] = np.cos(self.th), np.sin(self.th), self.thdot
        return obs

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            seeds = seed if isinstance(seed, list) else [seed + i for i in range(self.num_envs)]
            self.rngs = [seeding.np_random(s)[0] for s in seeds]
        for i in range(self.num_envs):
            self._reset_one(i)
        self.prev_done[:] = False
        return self._obs(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        th, thdot = self.th, self.thdot
        u = np.clip(np.asarray(actions).reshape(self.num_envs, -1)[:, 0], -self.max_torque,
                    self.max_torque)  # fmt: skip
        g, m, length, dt = self.g, self.m, self.l, self.dt
        costs = (((th + np.pi) % (2 * np.pi)) - np.pi) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)
        newthdot = thdot + (3 * g / (2 * length) * np.sin(th) + 3.0 / (m * length**2) * u) * dt
        newthdot = np.clip(newthdot, -self.max_speed, self.max_speed)
        self.th, self.thdot = th + newthdot * dt, newthdot
        self.steps += 1
        rewards = -costs
        terminated = np.zeros(self.num_envs, dtype=bool)
        limit = np.inf if self.max_episode_steps is None else self.max_episode_steps
        truncated = self.steps >= limit
        for i in np.flatnonzero(self.prev_done):  # NEXT_STEP: these copies only reset
            self._reset_one(i)
            rewards[i] = 0.0
            truncated[i] = False
        self.prev_done = terminated | truncated
        return self._obs(), rewards.astype(np.float64), terminated, truncated, {}


# Ids whose numpy-vectorized form ppoqa supplies (gymnasium ships none), with the constructor
# keywords each accepts (any other keyword, or a render mode, falls back to SyncVectorEnv).
OWN_VECTOR_ENVS: dict[str, tuple[type[VectorEnv], tuple[str, ...]]] = {
    "Pendulum-v1": (PendulumVectorEnv, ("g",))
}
