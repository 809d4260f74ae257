"""Environments a user might bring, in their own module: `--env tests.user_envs:Corridor-v0`.

Importing this module registers them, exactly as gymnasium.make("module:EnvId") expects.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    """Discrete positions 0..length-1, start at 0; action 1 moves right, 0 left; reaching the
    end pays 1 and terminates. `length` is a constructor keyword (--env-kwargs length=5)."""

    metadata = {"render_modes": []}

    def __init__(self, length: int = 4) -> None:
        self.length = int(length)
        self.observation_space = gym.spaces.Discrete(self.length)
        self.action_space = gym.spaces.Discrete(2)
        self.pos = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return self.pos, {}

    def step(self, action):
        self.pos = int(np.clip(self.pos + (1 if action == 1 else -1), 0, self.length - 1))
        done = self.pos == self.length - 1
        return self.pos, float(done), done, False, {}


class Target(gym.Env):
    """Box action in [-1, 1]^2, reward -|a - target|^2; `received` keeps every action the env
    got (to check that clipping happens at the env). Dict observation (flattened by ppoqa)."""

    def __init__(self, target: float = 0.5) -> None:
        self.target = float(target)
        self.observation_space = gym.spaces.Dict(
            {"pos": gym.spaces.Box(-1.0, 1.0, (2,), np.float32), "phase": gym.spaces.Discrete(3)}
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.received: list[np.ndarray] = []

    def _obs(self):
        return {"pos": np.zeros(2, np.float32), "phase": 0}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        action = np.asarray(action)
        self.received.append(action.copy())
        reward = -float(np.sum((action - self.target) ** 2))
        return self._obs(), reward, False, False, {}


class Pick(gym.Env):
    """MultiDiscrete([3, 4]) action; reward 1 for each component equal to its target (2, 1)."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.MultiDiscrete([3, 4])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        reward = float(action[0] == 2) + float(action[1] == 1)
        return np.zeros(1, np.float32), reward, False, False, {}


class Words(gym.Env):
    """A Text observation space: not something an MLP can read."""

    observation_space = gym.spaces.Text(8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return "a", {}

    def step(self, action):
        return "a", 0.0, True, False, {}


class Crash(Corridor):
    """A Corridor whose step() raises after `after` steps: a bug in a user's env."""

    def __init__(self, length: int = 4, after: int = 50) -> None:
        super().__init__(length)
        self.after, self.steps = int(after), 0

    def step(self, action):
        self.steps += 1
        if self.steps > self.after:
            raise ZeroDivisionError("the user's physics divided by zero")
        return super().step(action)


gym.register(id="Corridor-v0", entry_point=Corridor, max_episode_steps=20)
gym.register(id="Crash-v0", entry_point=Crash, max_episode_steps=20)
gym.register(id="Target-v0", entry_point=Target, max_episode_steps=10)
gym.register(id="Pick-v0", entry_point=Pick, max_episode_steps=5)
gym.register(id="Words-v0", entry_point=Words, max_episode_steps=5)
