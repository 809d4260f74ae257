"""A gymnasium id on a NEXT_STEP vector env behind the task seam trainer.train() calls."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppo_cli.config import Config
from ppo_cli.core.policy import ActorCritic
from ppo_cli.core.ppo import STATS, Batch, UpdateSettings, explained_variance
from ppo_cli.core.rundir import FINAL_EVAL, atomic_write_text
from ppo_cli.core.session import BUDGET, SOLVED, LoopState
from ppo_cli.errors import ConfigError, EnvError
from ppo_cli.gym.envs import action_mask_from_info, env_reward_threshold, make_vec_env
from ppo_cli.gym.evaluate import EVAL_EPISODES, EVAL_SEED, evaluate_gym
from ppo_cli.gym.normalize import Normalizer
from ppo_cli.gym.policy import MLPActorCritic
from ppo_cli.gym.rollout import GymCollector, GymRollout
from ppo_cli.gym.trace import batch_trace
from ppo_cli.presets import tuned_settings


class GymTask:
    """A gymnasium id on a NEXT_STEP vector env: a sample is one environment step; budgeted in
    timesteps; evaluated once at the end. A resumed run gets its weights, optimizer, RNGs and
    counters back, but the vector env restarts its episodes: not bit-identical."""

    fused_adam = True  # one kernel per step instead of one per tensor

    def __init__(
        self, cfg: Config, resume_dir: Path | None, progress: Callable[[str], None] | None = None
    ) -> None:
        self.cfg = cfg
        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available", "use --device cpu")
        auto = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(auto if cfg.device == "auto" else cfg.device)
        self.fingerprint = None
        self.batch_size = cfg.num_envs * cfg.num_steps
        self.total = max(1, cfg.timesteps // self.batch_size)
        self.envs: Any = None
        self.warn: Any = None  # the run's warning callback, from prepare_run
        self.target = cfg.target_return if cfg.early_stop else None
        self.may_stop_early = self.target is not None
        # A greedy evaluation costs whole episodes, so it runs when the training episodes of
        # an iteration reach the target on average, and every twentieth of the budget besides
        # (a greedy policy often plays far better than the sampling one: Box actions' mean).
        # 20 checks stopped CartPole ~15 % sooner than 10 on seeds 100-109 (a poor policy's
        # check is short).
        self.check_every = max(1, self.total // 20)
        self.last_eval: tuple[int, list[Any]] | None = None  # (iteration, its episodes)

    def build(self) -> ActorCritic:
        cfg = self.cfg
        self.envs, self.info = make_vec_env(cfg.env, cfg.num_envs, cfg.vector_mode, cfg.env_kwargs)
        info = self.info
        if cfg.action_mask and info.action_kind != "discrete":
            raise EnvError(
                f"{cfg.env}: action_mask needs Discrete actions, not {info.action_kind}",
                "leave action_mask off for this env (--no-action-mask)",
            )
        self.normalizer = Normalizer(
            info.obs_dim, cfg.num_envs, cfg.norm_obs, cfg.norm_reward, gamma=cfg.gamma
        )
        if cfg.action_mask:  # refused before any run folder exists
            _, infos = self.envs.reset(seed=cfg.seed)
            action_mask_from_info(infos, info, cfg.num_envs)
        return MLPActorCritic(
            info.obs_dim, info.num_actions, cfg.hidden_size, log_std_init=cfg.log_std_init,
            activation=cfg.activation, ortho_init=cfg.ortho_init, action_mask=cfg.action_mask,
            action_kind=info.action_kind, action_nvec=list(info.action_nvec),
        ).to(self.device)  # fmt: skip

    def prepare_run(
        self, run_dir: Path, state: LoopState, ckpt: dict[str, Any] | None, warn: Any
    ) -> None:
        self.run_dir = run_dir
        self.warn = warn
        if ckpt is not None and ckpt.get("normalizer") is not None:
            self.normalizer.load(ckpt["normalizer"])

    def plan(self, policy: ActorCritic) -> None: ...

    def update_settings(self) -> UpdateSettings:
        return UpdateSettings.from_config(self.cfg)

    def training_spec(self) -> None: ...  # nothing about a gymnasium run's data can change

    def longer(self, state: LoopState) -> str:
        return f"--timesteps {(state.iteration + 1) * self.batch_size}"

    def checkpoint_extras(self, state: LoopState) -> dict[str, Any]:
        shape = ("obs_dim", "num_actions", "action_start", "action_kind")
        return {
            "env": self.cfg.env,
            **{k: getattr(self.info, k) for k in shape},
            "env_kwargs": dict(self.info.env_kwargs),
            "normalizer": self.normalizer.state(),
            "global_step": state.steps,
        }

    def start(self, state: LoopState) -> None:
        seed = self.cfg.seed + state.iteration
        self.collector = GymCollector(
            self.envs, self.info, seed, self.device, self.normalizer, self.cfg.action_mask
        )
        self.started = time.perf_counter() - state.wall_seconds

    def collect(self, policy: ActorCritic) -> tuple[GymRollout, Batch, torch.Tensor]:
        rollout, _ = self.collector.collect(policy, self.cfg.num_steps)
        cfg = self.cfg
        return (rollout, *rollout.to_batch(cfg.gamma, cfg.gae_lambda, cfg.reward_scale))

    def record(
        self, iteration: int, state: LoopState, ro: GymRollout, batch: Batch, stats: Any, lr: float
    ) -> dict[str, Any]:
        global_step = state.steps + ro.num_steps
        record: dict[str, Any] = {
            "iteration": iteration,
            "global_step": global_step,
            "progress": iteration,
        }
        if ro.finished:
            record["episodic_return"] = float(np.mean([r for _, r, _ in ro.finished]))
            record["episodic_length"] = float(np.mean([n for _, _, n in ro.finished]))
        return record | {
            "sps": round(global_step / max(time.perf_counter() - self.started, 1e-9), 1),
            **{k: stats[k] for k in STATS},
            "explained_variance": explained_variance(batch.old_values, batch.returns),
            "learning_rate": lr,
            "epoch_losses": stats["epoch_losses"],
        }

    def evaluate(
        self, policy: ActorCritic, iteration: int, record: dict[str, Any], state: LoopState
    ) -> tuple[None, bool]:
        """Whether the greedy policy has reached the target return (when a check is due)."""
        target = self.target
        if target is None or iteration >= self.total:  # the summary evaluates the last one
            return None, False
        trained = record.get("episodic_return")
        due = (trained is not None and trained >= target) or iteration % self.check_every == 0
        if not due:
            return None, False
        episodes = self._greedy_episodes(policy)
        self.last_eval = (iteration, episodes)
        mean = float(np.mean([ep.episode_return for ep in episodes]))
        record["eval_return"] = round(mean, 4)
        if mean < target:
            return None, False
        state.stop_reason = SOLVED
        state.stop_message = (
            f"solved: greedy evaluation returned {mean:.4g} on average over {len(episodes)} "
            f"episodes, reaching the target {target:g} ({self._target_source()}) at iteration "
            f"{iteration} of {self.total} ({state.steps + self.batch_size:,} steps)"
        )
        return None, True

    def _target_source(self) -> str:
        target, env = self.cfg.target_return, self.cfg.env
        if target == env_reward_threshold(env):
            return f"{env}'s reward_threshold"
        if target == tuned_settings(env).get("target_return"):
            return "its tuned entry"
        return "--target-return"

    def _greedy_episodes(self, policy: ActorCritic) -> list[Any]:
        cfg, state = self.cfg, self.normalizer.state()
        return evaluate_gym(
            policy, cfg.env, EVAL_EPISODES, EVAL_SEED, cfg.env_kwargs, state, self.warn
        )

    def action_label(self, action: torch.Tensor) -> str:
        return str(action.tolist())

    def trace(
        self, iteration: int, ro: GymRollout, batch: Batch, deltas: torch.Tensor, rec: Any
    ) -> dict[str, Any]:
        dones = ro.terminated | ro.truncated
        return batch_trace(
            iteration, batch, ro.rewards, dones, deltas, rec, self.cfg.norm_adv, valid=ro.valid
        )

    def summary(self, policy: ActorCritic, state: LoopState) -> dict[str, Any]:
        if self.last_eval is not None and self.last_eval[0] == state.iteration:
            episodes = self.last_eval[1]  # the check that stopped the run: the same episodes
        else:
            episodes = self._greedy_episodes(policy)
        returns = [float(ep.episode_return) for ep in episodes]
        mean = float(np.mean(returns))
        if self.target is not None and state.stop_reason is None and mean < self.target:
            state.stop_reason = BUDGET
            state.stop_message = (
                f"budget: all {state.iteration} iterations ({state.steps:,} steps) used, greedy "
                f"evaluation returned {mean:.4g}, short of the target {self.target:g} "
                f"({self._target_source()}); pass --timesteps to train longer"
            )
        # Kept in the run folder so `ppoqa plot` can mark it at the end of the training curve.
        final = {
            "mean_return": mean,
            "std_return": float(np.std(returns)),
            "returns": returns,
            "episodes": len(returns),
            "seed": EVAL_SEED,
            "global_step": state.steps,
        }
        atomic_write_text(self.run_dir / FINAL_EVAL, json.dumps(final) + "\n")
        return {"mean_return": mean}

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()
