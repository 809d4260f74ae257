"""Vectorized gymnasium environments for the PPO core: Box observations, Discrete actions.

Autoreset: every vector mode runs with gymnasium's NEXT_STEP autoreset, on purpose. It is the
only mode the numpy-vectorized CartPole supports, SyncVectorEnv and AsyncVectorEnv default to
it, and it keeps one semantics for all three: the step that ends an episode returns that
episode's *final* observation, and the next `step()` call on that sub-env only resets it (the
action is ignored, reward 0, both flags False). Collectors therefore mark that reset step as
not a real transition and leave it out of training; as a bonus the value of the final
observation (needed to bootstrap a truncated episode) is computed by the ordinary forward pass
of the next step, with no extra call.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from ppo_cli.errors import EnvError

SUPPORTED = (
    "ppoqa trains on gymnasium environments with a Box observation space "
    "and a Discrete action space"
)
VECTOR_MODES = ("auto", "sync", "async", "vector")
_GYM_MODE = {"sync": "sync", "async": "async", "vector": "vector_entry_point"}


@dataclass(frozen=True)
class EnvInfo:
    """What the policy and the checkpoint need to know about an environment."""

    env_id: str
    obs_dim: int  # flattened Box observation size
    num_actions: int
    action_start: int  # Discrete(n, start): env action = policy action + start
    vector_mode: str  # the mode really used: sync | async | vector


def find_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec, or an EnvError naming the closest registered ids."""
    if env_id in gym.registry:
        return gym.registry[env_id]
    ids = sorted(gym.registry)
    close = difflib.get_close_matches(env_id, ids, n=3, cutoff=0.5)
    if not close:  # "cartpole" -> CartPole-v1: compare case-insensitively too
        lower = {i.lower(): i for i in ids}
        close = [lower[c] for c in difflib.get_close_matches(env_id.lower(), list(lower), n=3)]
    hint = (
        f"did you mean {', '.join(close)}?"
        if close
        else "use text-qa or a gymnasium id such as CartPole-v1, Acrobot-v1, MountainCar-v0"
    )
    raise EnvError(f"unknown environment '{env_id}'", hint)


def resolve_vector_mode(spec: gym.envs.registration.EnvSpec, mode: str) -> str:
    """auto -> gymnasium's numpy-vectorized implementation when the env has one, else sync."""
    if mode not in VECTOR_MODES:
        raise EnvError(f"unknown vector mode '{mode}'", f"use one of {', '.join(VECTOR_MODES)}")
    if mode == "auto":
        return "vector" if spec.vector_entry_point is not None else "sync"
    if mode == "vector" and spec.vector_entry_point is None:
        raise EnvError(
            f"{spec.id} has no numpy-vectorized implementation (vector_entry_point)",
            "use --vector-mode sync, or async for slow environments",
        )
    return mode


def check_spaces(
    env_id: str, obs_space: gym.Space, action_space: gym.Space
) -> tuple[int, int, int]:
    """(obs_dim, num_actions, action_start), or an EnvError saying what is supported."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise EnvError(
            f"{env_id} has a {type(action_space).__name__} action space; {SUPPORTED}",
            "try CartPole-v1, Acrobot-v1 or MountainCar-v0",
        )
    if not isinstance(obs_space, gym.spaces.Box):
        raise EnvError(
            f"{env_id} has a {type(obs_space).__name__} observation space; {SUPPORTED}",
            "try CartPole-v1, Acrobot-v1 or MountainCar-v0",
        )
    return int(np.prod(obs_space.shape)), int(action_space.n), int(action_space.start)


def make_vec_env(env_id: str, num_envs: int, mode: str = "auto") -> tuple[VectorEnv, EnvInfo]:
    """A NEXT_STEP-autoreset vector env of `num_envs` copies of env_id, checked for support."""
    spec = find_spec(env_id)
    used = resolve_vector_mode(spec, mode)
    vector_kwargs = {} if used == "vector" else {"autoreset_mode": AutoresetMode.NEXT_STEP}
    try:
        envs = gym.make_vec(
            env_id, num_envs, vectorization_mode=_GYM_MODE[used], vector_kwargs=vector_kwargs
        )
    except Exception as exc:  # missing extras (box2d, mujoco), bad kwargs, ...
        raise EnvError(
            f"{env_id}: could not be created ({type(exc).__name__}: {exc})",
            "install the environment's extra dependencies, or pick another --env",
        ) from exc
    try:
        dims = check_spaces(env_id, envs.single_observation_space, envs.single_action_space)
        autoreset = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if autoreset != AutoresetMode.NEXT_STEP:
            raise EnvError(
                f"{env_id} ({used}) resets with {autoreset}; ppoqa expects NEXT_STEP autoreset",
                "use --vector-mode sync",
            )
    except BaseException:
        envs.close()
        raise
    return envs, EnvInfo(env_id, *dims, vector_mode=used)


class EpisodeTracker:
    """Counts returns and lengths per sub-env ourselves, over real transitions only.

    (No RecordEpisodeStatistics wrapper: it cannot wrap the numpy-vectorized envs, and with
    NEXT_STEP autoreset the reset step must not count.)
    """

    def __init__(self, num_envs: int) -> None:
        self.running_return = np.zeros(num_envs, dtype=np.float64)  # [N]
        self.running_length = np.zeros(num_envs, dtype=np.int64)  # [N]
        self.valid = np.ones(num_envs, dtype=bool)  # [N] False: the next step only resets

    def update(self, reward: np.ndarray, done: np.ndarray) -> list[tuple[int, float, int]]:
        """Add one step (real where self.valid); returns (env index, return, length) of every
        episode that just ended. With NEXT_STEP autoreset the step after an end is a reset."""
        valid = self.valid
        self.running_return += np.where(valid, reward, 0.0)
        self.running_length += valid
        ended = np.flatnonzero(done & valid)
        out = [(int(i), float(self.running_return[i]), int(self.running_length[i])) for i in ended]
        self.running_return[ended] = 0.0
        self.running_length[ended] = 0
        self.valid = ~(done & valid)
        return out
