"""train_gym(): seed -> vector env -> loop(rollout -> truncation bootstrap -> GAE -> PPO update).

The same PPO core as text QA (policies.MLPActorCritic, gae.compute_gae, rollout.Batch,
ppo.ppo_update); only the rollout differs: a sample here is one environment step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppo_cli.checkpointing import (
    TrainingSession,
    check_finite_metrics,
    check_finite_parameters,
    load_resume_checkpoint,
    restore_training_state,
    training_state,
)
from ppo_cli.config import Config, config_to_yaml
from ppo_cli.envs.gym_envs import EnvInfo, EpisodeTracker, make_vec_env
from ppo_cli.envs.normalize import Normalizer
from ppo_cli.errors import ConfigError, RunError, TrainingError
from ppo_cli.gae import GAEResult, compute_gae
from ppo_cli.gym_evaluate import EVAL_EPISODES, EVAL_SEED, evaluate_gym
from ppo_cli.policies import ActorCritic, MLPActorCritic
from ppo_cli.ppo import UpdateSettings, explained_variance, ppo_update
from ppo_cli.rollout import Batch
from ppo_cli.rundir import (
    CONFIG,
    METRICS,
    append_metrics,
    atomic_write_text,
    new_run_dir,
    prepare_run_dir,
    truncate_metrics,
)
from ppo_cli.trace import batch_trace, start_trace
from ppo_cli.trainer import Callbacks, TrainResult, resolve_device, seed_everything


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

    def advantages(self, gamma: float, gae_lambda: float, reward_scale: float = 1.0) -> GAEResult:
        """GAE with SB3's truncation rule: a step cut by the time limit (and not terminated)
        gets gamma * V(final obs) added to its reward; then every end is a `done`.

        With NEXT_STEP autoreset the observation stored one step after an episode end *is* that
        episode's final observation, so V(final obs) is values[t + 1] (or last_value at t = T-1).
        """
        next_values = torch.cat([self.values[1:], self.last_value.unsqueeze(0)])  # [T, N]
        bootstrap = (self.truncated & ~self.terminated & self.valid).float()  # [T, N]
        rewards = reward_scale * self.rewards + gamma * next_values * bootstrap  # [T, N]
        dones = self.terminated | self.truncated  # [T, N]
        return compute_gae(rewards, self.values, dones, self.last_value, gamma, gae_lambda)

    def to_batch(self, gamma: float, gae_lambda: float, reward_scale: float = 1.0) -> Batch:
        """Flatten the valid steps to 1-D samples (mask all ones) for ppo_update."""
        gae = self.advantages(gamma, gae_lambda, reward_scale)
        v = self.valid
        n = int(v.sum())
        return Batch(
            obs=self.obs[v],  # [B, D]
            actions=self.actions[v],  # [B, ...]
            logprobs=self.logprobs[v],
            values=self.values[v],
            advantages=gae.advantages[v],
            returns=gae.returns[v],
            mask=torch.ones(n, dtype=torch.bool, device=v.device),
        )


class GymCollector:
    """Steps a NEXT_STEP vector env with the policy; keeps the env state across iterations."""

    def __init__(
        self,
        envs: Any,
        info: EnvInfo,
        seed: int,
        device: torch.device,
        normalizer: Normalizer | None = None,
    ) -> None:
        self.envs, self.info, self.device = envs, info, device
        self.num_envs = envs.num_envs
        self.normalizer = normalizer or Normalizer(info.obs_dim, self.num_envs)
        obs, _ = envs.reset(seed=seed)
        self.next_obs = self._obs_tensor(obs)  # [N, D]
        self.prev_done = np.zeros(self.num_envs, dtype=bool)  # [N] ended on the previous step
        self.tracker = EpisodeTracker(self.num_envs)

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
        logprobs = torch.zeros(t_, n, device=dev)  # [T, N]
        values = torch.zeros(t_, n, device=dev)  # [T, N]
        rewards = np.zeros((t_, n), dtype=np.float32)  # [T, N]
        terminated = np.zeros((t_, n), dtype=bool)  # [T, N]
        truncated = np.zeros((t_, n), dtype=bool)  # [T, N]
        valid = np.zeros((t_, n), dtype=bool)  # [T, N]
        finished: list[tuple[int, float, int]] = []
        for step in range(t_):
            obs[step] = self.next_obs
            valid[step] = ~self.prev_done
            action, logprob, value = policy.act(self.next_obs)
            actions[step], logprobs[step], values[step] = action, logprob, value
            next_obs, reward, term, trunc, _ = self.envs.step(
                self.info.to_env(action.cpu().numpy())
            )
            terminated[step], truncated[step] = term, trunc
            done = np.logical_or(term, trunc)
            finished.extend(self.tracker.update(np.asarray(reward), done, valid[step]))  # raw
            rewards[step] = self.normalizer.reward(np.asarray(reward), done, valid[step])
            self.prev_done = done & valid[step]
            self.next_obs = self._obs_tensor(next_obs)
        last_value = policy.get_value(self.next_obs)  # [N]
        rollout = GymRollout(
            obs=obs,
            actions=actions,
            logprobs=logprobs,
            values=values,
            rewards=torch.from_numpy(rewards).to(dev),
            terminated=torch.from_numpy(terminated).to(dev),
            truncated=torch.from_numpy(truncated).to(dev),
            valid=torch.from_numpy(valid).to(dev),
            last_value=last_value,
        )
        return rollout, finished


def _adam(policy: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """Fused Adam (one kernel per step instead of one per tensor; ~15 % faster per gradient step
    measured on this CPU) where torch supports it on the device, else the plain one."""
    try:
        return torch.optim.Adam(policy.parameters(), lr=lr, eps=1e-5, fused=True)
    except (RuntimeError, ValueError):  # torch < 2.4 has no fused Adam on CPU
        return torch.optim.Adam(policy.parameters(), lr=lr, eps=1e-5)


def train_gym(
    cfg: Config, run_dir: Path | None, cb: Callbacks, resume: bool = False
) -> TrainResult:
    """PPO on a gymnasium id; writes config.yaml, metrics.jsonl, checkpoint.pt to run_dir."""
    if cfg.policy != "mlp":
        raise ConfigError(
            f"--policy {cfg.policy} is a text-QA network; gymnasium environments use mlp",
            "drop --policy (mlp is picked for Box observations) or pass --policy mlp",
        )
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed, cfg.threads)
    envs, info = make_vec_env(cfg.env, cfg.num_envs, cfg.vector_mode, cfg.env_kwargs)
    try:
        return _train(cfg, run_dir, cb, envs, info, device, resume)
    finally:
        envs.close()


def _train(
    cfg: Config,
    run_dir: Path | None,
    cb: Callbacks,
    envs: Any,
    info: EnvInfo,
    device: torch.device,
    resume: bool,
) -> TrainResult:
    policy = MLPActorCritic(
        info.obs_dim, info.num_actions, cfg.hidden_size, log_std_init=cfg.log_std_init,
        **info.policy_spec(),
    ).to(device)  # fmt: skip
    normalizer = Normalizer(
        info.obs_dim, cfg.num_envs, cfg.norm_obs, cfg.norm_reward, gamma=cfg.gamma
    )
    optimizer = _adam(policy, cfg.learning_rate)
    settings = UpdateSettings.from_config(cfg)
    batch_size = cfg.num_envs * cfg.num_steps
    num_iterations = max(1, cfg.timesteps // batch_size)
    run_dir = prepare_run_dir(run_dir or new_run_dir(cfg.env, cfg.seed))
    with TrainingSession(run_dir, cfg.save_every, resume, cb.on_warning) as session:
        state = {"iteration": 0, "global_step": 0, "episodes": 0, "epochs": 0,
                 "gradient_updates": 0, "wall_seconds": 0.0}  # fmt: skip
        if resume:
            # Weights, optimizer, RNGs and counters come back; the vector env restarts its
            # episodes, so a resumed gym run is not bit-identical to an uninterrupted one.
            ckpt = load_resume_checkpoint(run_dir, None)
            state.update(restore_training_state(ckpt, policy, optimizer, run_dir))
            if ckpt.get("normalizer") is not None:
                normalizer.load(ckpt["normalizer"])
            if state["iteration"] >= num_iterations:
                raise RunError(
                    f"{run_dir}: the run already finished all {state['iteration']} iterations",
                    "its learning rate anneals over a fixed length; start a new run"
                    if cfg.anneal_lr
                    else f"to train further, pass --timesteps "
                    f"{(state['iteration'] + 1) * batch_size} or more",
                )
            truncate_metrics(run_dir, state["iteration"])
        else:
            (run_dir / METRICS).unlink(missing_ok=True)
        atomic_write_text(run_dir / CONFIG, config_to_yaml(cfg))
        extra = {
            "env": cfg.env,
            "obs_dim": info.obs_dim,
            "num_actions": info.num_actions,
            "action_start": info.action_start,
            "action_kind": info.action_kind,
            "env_kwargs": dict(info.env_kwargs),
            "global_step": state["global_step"],
        }
        session.track(
            lambda: training_state(
                policy,
                optimizer,
                state,
                extra | {"global_step": state["global_step"], "normalizer": normalizer.state()},
            )
        )
        session.start(state["iteration"])
        cb.on_start(cfg, run_dir, num_iterations)

        collector = GymCollector(envs, info, cfg.seed + state["iteration"], device, normalizer)
        start = time.perf_counter() - state["wall_seconds"]
        for iteration in range(state["iteration"] + 1, num_iterations + 1):
            session.begin()
            if cfg.anneal_lr:
                frac = 1.0 - (iteration - 1) / num_iterations
                optimizer.param_groups[0]["lr"] = frac * cfg.learning_rate
            rollout, finished = collector.collect(policy, cfg.num_steps)
            global_step = state["global_step"] + batch_size
            batch = rollout.to_batch(cfg.gamma, cfg.gae_lambda, cfg.reward_scale)
            recorder = start_trace(cb, iteration, num_iterations, settings.clip_coef)
            try:
                stats = ppo_update(
                    policy, optimizer, batch, settings, recorder.on_minibatch if recorder else None
                )
            except TrainingError as exc:
                raise TrainingError(f"iteration {iteration}: {exc.message}", exc.hint) from exc
            check_finite_parameters(policy, iteration)

            elapsed = time.perf_counter() - start
            record: dict[str, Any] = {
                "iteration": iteration,
                "global_step": global_step,
                "progress": iteration,
            }
            if finished:
                record["episodic_return"] = float(np.mean([r for _, r, _ in finished]))
                record["episodic_length"] = float(np.mean([n for _, _, n in finished]))
            record.update(
                {
                    "sps": round(global_step / max(elapsed, 1e-9), 1),
                    **{
                        k: stats[k]
                        for k in ("loss", "policy_loss", "value_loss", "entropy", "approx_kl")
                    },
                    "clipfrac": stats["clipfrac"],
                    "explained_variance": explained_variance(batch.values, batch.returns),
                    "learning_rate": optimizer.param_groups[0]["lr"],
                    "epoch_losses": stats["epoch_losses"],
                    "wall_seconds": round(elapsed, 4),
                }
            )
            check_finite_metrics(record, ("loss",), iteration)
            append_metrics(run_dir, record)
            state.update(
                iteration=iteration,
                global_step=global_step,
                episodes=state["episodes"] + len(finished),
                epochs=state["epochs"] + stats["epochs"],
                gradient_updates=state["gradient_updates"] + stats["gradient_updates"],
                wall_seconds=record["wall_seconds"],
            )
            session.end(iteration)
            cb.on_iteration(record)
            if recorder is not None:
                gae = rollout.advantages(cfg.gamma, cfg.gae_lambda, cfg.reward_scale)
                cb.on_trace(
                    batch_trace(
                        iteration, batch, rollout.rewards, rollout.terminated | rollout.truncated,
                        gae.deltas, recorder, settings.norm_adv, valid=rollout.valid,
                    )
                )  # fmt: skip
            session.stop_if_requested()
        wall = time.perf_counter() - start
        state["wall_seconds"] = wall
        session.save(state["iteration"])
    episodes = evaluate_gym(
        policy, cfg.env, EVAL_EPISODES, EVAL_SEED, cfg.env_kwargs, normalizer.state()
    )
    returns = [ep.episode_return for ep in episodes]
    return TrainResult(
        run_dir=run_dir,
        env=cfg.env,
        iterations=state["iteration"],
        episodes=state["episodes"],
        steps=state["global_step"],
        epochs=state["epochs"],
        gradient_updates=state["gradient_updates"],
        wall_seconds=wall,
        mean_return=float(np.mean(returns)),
    )
