"""Greedy evaluation of gymnasium runs (used by train's final eval and `ppoqa eval`)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppo_cli.core.policy import ActorCritic
from ppo_cli.core.rundir import load_checkpoint, read_config, run_env
from ppo_cli.errors import RunError, warn_stderr
from ppo_cli.gym.envs import EnvInfo, EpisodeTracker, action_mask_from_info, make_vec_env
from ppo_cli.gym.normalize import Normalizer
from ppo_cli.gym.policy import MLPActorCritic, build_policy

EVAL_SEED = 1000  # train's final evaluation uses the same seed as `ppoqa eval`'s default
EVAL_EPISODES = 20
# Greedy evaluation plays whole episodes: an env without a time limit whose greedy policy never
# reaches a terminal state would play forever.
EVAL_MAX_EPISODE_STEPS = 1000
_TIME_LIMIT_SAID: set[str] = set()  # the envs that note was given for (once per process)


@dataclass
class EpisodeResult:
    episode: int
    episode_return: float
    length: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def greedy_action(
    policy: MLPActorCritic, obs: torch.Tensor, infos: dict[str, Any], info: EnvInfo, width: int
) -> torch.Tensor:
    """argmax (or the Gaussian's mean), under the env's action mask when the run uses one."""
    if policy.uses_action_mask:
        mask = action_mask_from_info(infos, info, width).to(obs.device)
        return policy.act(obs, greedy=True, action_mask=mask)[0]
    return policy.greedy(obs)


@torch.no_grad()
def evaluate_gym(
    policy: ActorCritic,
    env_id: str,
    episodes: int = EVAL_EPISODES,
    seed: int = EVAL_SEED,
    env_kwargs: dict[str, Any] | None = None,
    normalizer_state: dict[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[EpisodeResult]:
    """`episodes` seeded greedy episodes on the env's fastest vector form, with the run's
    env_kwargs and its normalization statistics frozen. Sub-env i plays a fixed quota (episodes
    i, i + W, ...), so short episodes are not over-represented; an env registered without a time
    limit is cut at EVAL_MAX_EPISODE_STEPS steps."""
    width = min(episodes, 32)  # sub-envs run side by side
    quota = np.array([len(range(i, episodes, width)) for i in range(width)])  # [W]
    envs, info = make_vec_env(
        env_id, width, "auto", env_kwargs, max_episode_steps=EVAL_MAX_EPISODE_STEPS
    )
    if info.added_time_limit and env_id not in _TIME_LIMIT_SAID:
        _TIME_LIMIT_SAID.add(env_id)
        (warn or warn_stderr)(
            f"{env_id} has no time limit (max_episode_steps), so evaluation ends each episode "
            f"after {info.added_time_limit} steps; register it with max_episode_steps=N to choose"
        )
    norm = Normalizer.frozen_from(normalizer_state, info.obs_dim, width)
    device = next(policy.parameters()).device
    was_training = policy.training
    policy.eval()
    done_count = np.zeros(width, dtype=np.int64)  # [W] episodes finished per sub-env
    found: dict[int, EpisodeResult] = {}
    try:
        obs, infos = envs.reset(seed=seed)
        tracker = EpisodeTracker(width)
        while (done_count < quota).any():
            x = norm.obs(np.asarray(obs, dtype=np.float32).reshape(width, -1))
            action = greedy_action(policy, torch.from_numpy(x).to(device), infos, info, width)
            obs, reward, term, trunc, infos = envs.step(info.to_env(action.cpu().numpy()))
            done = np.logical_or(term, trunc)
            for i, ret, length in tracker.update(np.asarray(reward), done):
                if done_count[i] < quota[i]:
                    k = i + width * int(done_count[i])
                    found[k] = EpisodeResult(k, ret, length)
                    done_count[i] += 1
    finally:
        envs.close()
        policy.train(was_training)
    return [found[k] for k in range(episodes)]


@dataclass
class GymRun:
    env_id: str
    policy: MLPActorCritic
    env_kwargs: dict[str, Any] | None = None
    normalizer: dict[str, Any] | None = None


def load_gym_run(run: Path) -> GymRun:
    env_id = run_env(run)
    if env_id == "text-qa":
        raise RunError(f"{run}: is a text-QA run", "use `ppoqa eval` without gymnasium options")
    ckpt = load_checkpoint(run)
    try:
        policy = build_policy(dict(ckpt["policy_spec"]))
        policy.load_state_dict(ckpt["policy"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise RunError(
            f"{run}: checkpoint does not fit this ppoqa ({type(exc).__name__})",
            "retrain with `ppoqa train --env ...`",
        ) from exc
    policy.eval()
    env_kwargs = ckpt.get("env_kwargs") or read_config(run).get("env_kwargs") or None
    return GymRun(str(ckpt.get("env", env_id)), policy, env_kwargs, ckpt.get("normalizer"))


def mean_std(values: list[float]) -> tuple[float, float]:
    """Population std (ddof 0), as gymnasium/SB3 evaluation reports it."""
    return statistics.fmean(values), statistics.pstdev(values)
