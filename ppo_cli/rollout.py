"""Every rollout's storage and collection, and its to_batch(): mask, bootstrap, then GAE.

Text QA: a batch of whole episodes as padded tensors; rows are episodes and columns are steps,
and `mask` marks the steps that really happened, so padding after <END> never reaches a loss or
an advantage statistic. Gymnasium: time-major [T, N] steps of a NEXT_STEP vector env, flattened
to one sample per valid step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ppo_cli.data import PAD_ID
from ppo_cli.envs.gym_envs import EnvInfo, EpisodeTracker, action_mask_from_info
from ppo_cli.envs.normalize import Normalizer
from ppo_cli.envs.text_qa_vec import TextQAVecEnv
from ppo_cli.gae import GAEResult, compute_gae
from ppo_cli.policies import ActorCritic
from ppo_cli.ppo import Batch


@dataclass
class TextRollout:
    """One iteration of generated episodes. Shapes: N episodes, P prompt, T max steps."""

    question_idx: torch.Tensor  # [N]
    tokens: torch.Tensor  # [N, P + T - 1] prompt then generated ids (<PAD> after the end)
    actions: torch.Tensor  # [N, T]
    logprobs: torch.Tensor  # [N, T]
    values: torch.Tensor  # [N, T]
    rewards: torch.Tensor  # [N, T]
    dones: torch.Tensor  # [N, T] 1 at the step the episode ended
    mask: torch.Tensor  # [N, T] bool, step happened
    exact: torch.Tensor  # [N] bool
    answer: torch.Tensor  # [N, T] answer ids without <END>
    answer_len: torch.Tensor  # [N]
    # RLHF (ppo_cli.rlhf.apply_kl_penalty): rewards then hold score - kl_coef * kl
    scores: torch.Tensor | None = None  # [N, T] the environment's rewards before the penalty
    kl: torch.Tensor | None = None  # [N, T] per-token KL estimates to the reference
    kl_coef: float | None = None  # the coefficient that was applied
    ref_logprobs: torch.Tensor | None = None  # [N, T] log pi_ref, for --kl-in loss
    # rows at the end that replay remembered answers (ppo_cli.answer_memory), not samples
    num_replayed: int = 0

    @property
    def num_episodes(self) -> int:
        """Episodes the policy sampled (rows of the batch less the replayed ones)."""
        return self.question_idx.shape[0] - self.num_replayed

    @property
    def sampled(self) -> slice:
        """The rows the policy sampled (the replayed ones follow them)."""
        return slice(0, self.num_episodes)

    def cat(self, replayed: TextRollout) -> TextRollout:
        """This rollout with `replayed`'s episodes appended as replayed rows."""
        names = ("question_idx", "tokens", "actions", "logprobs", "values", "rewards", "dones")
        names += ("mask", "exact", "answer", "answer_len")
        both = {n: torch.cat([getattr(self, n), getattr(replayed, n)]) for n in names}
        return TextRollout(**both, num_replayed=self.num_replayed + replayed.num_episodes)

    @property
    def num_steps(self) -> int:
        return int(self.mask.sum())

    @property
    def episode_returns(self) -> torch.Tensor:
        return (self.rewards * self.mask).sum(1)

    def to_batch(self, gamma: float, gae_lambda: float) -> tuple[Batch, torch.Tensor]:
        """GAE over each episode (time-major inside compute_gae); returns the batch and deltas."""
        gae = compute_gae(
            self.rewards.T, self.values.T * self.mask.T, self.dones.T, 0.0, gamma, gae_lambda
        )
        adv, ret = gae.advantages.T * self.mask, gae.returns.T * self.mask
        batch = Batch(
            obs=self.tokens,
            actions=self.actions,
            old_logprobs=self.logprobs,
            old_values=self.values,
            advantages=adv,
            returns=ret,
            mask=self.mask,
            groups=self.question_idx,
        )
        return batch, gae.deltas.T * self.mask


@torch.no_grad()
def collect_text_episodes(
    policy: ActorCritic,
    venv: TextQAVecEnv,
    question_idx: torch.Tensor,
    greedy: bool = False,
    prompts: torch.Tensor | None = None,
    force: torch.Tensor | None = None,
) -> TextRollout:
    """Generate one episode per question index, all in lockstep, one token per step.

    force [N, T]: tokens to take instead of choosing, <PAD> where the policy chooses; their
    log-probs and values are recorded as if sampled (a replayed answer, an exploration probe).
    """
    prompts = venv.reset(question_idx, prompts)  # [N, P]
    n, p = prompts.shape
    t_max = venv.max_steps
    tokens = torch.full((n, p + t_max - 1), PAD_ID, dtype=torch.long)
    tokens[:, :p] = prompts
    actions = torch.full((n, t_max), PAD_ID, dtype=torch.long)
    logprobs = torch.zeros(n, t_max)
    values = torch.zeros(n, t_max)
    rewards = torch.zeros(n, t_max)
    dones = torch.zeros(n, t_max)
    mask = torch.zeros(n, t_max, dtype=torch.bool)
    memory = None  # what the policy carries between steps (the LSTM's state)
    for t in range(t_max):
        active = ~venv.done
        if not active.any():
            break
        forced = None if force is None else force[:, t]
        action, logprob, value, memory = policy.act_step(tokens[:, : p + t], greedy, memory, forced)
        action = torch.where(active, action, PAD_ID)
        reward, ended = venv.step(action)
        mask[:, t] = active
        actions[:, t] = action
        logprobs[:, t] = torch.where(active, logprob, 0.0)
        values[:, t] = torch.where(active, value, 0.0)
        rewards[:, t] = reward
        dones[:, t] = ended.float()
        if t + 1 < t_max:
            tokens[:, p + t] = torch.where(active & ~ended, action, PAD_ID)
    return TextRollout(
        question_idx=question_idx,
        tokens=tokens,
        actions=actions,
        logprobs=logprobs,
        values=values,
        rewards=rewards,
        dones=dones,
        mask=mask,
        exact=venv.exact.clone(),
        answer=venv.answer.clone(),
        answer_len=venv.answer_len.clone(),
    )


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

    @property
    def num_episodes(self) -> int:
        """Episodes that ended in this rollout."""
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
        n = int(v.sum())
        batch = Batch(
            obs=self.obs[v],  # [B, D]
            actions=self.actions[v],  # [B, ...]
            old_logprobs=self.logprobs[v],
            old_values=self.values[v],
            advantages=gae.advantages[v],
            returns=gae.returns[v],
            mask=torch.ones(n, dtype=torch.bool, device=v.device),
            action_mask=None if self.action_masks is None else self.action_masks[v],
        )
        return batch, gae.deltas


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
        logprobs = torch.zeros(t_, n, device=dev)  # [T, N]
        values = torch.zeros(t_, n, device=dev)  # [T, N]
        rewards = np.zeros((t_, n), dtype=np.float32)  # [T, N]
        terminated = np.zeros((t_, n), dtype=bool)  # [T, N]
        truncated = np.zeros((t_, n), dtype=bool)  # [T, N]
        valid = np.zeros((t_, n), dtype=bool)  # [T, N]
        finished: list[tuple[int, float, int]] = []
        masks = None  # [T, N, A] bool when the env's action masks are used
        if self.next_mask is not None:
            masks = torch.zeros(t_, *self.next_mask.shape, dtype=torch.bool, device=dev)
        for step in range(t_):
            obs[step] = self.next_obs
            valid[step] = self.tracker.valid
            if masks is None:
                action, logprob, value = policy.act(self.next_obs)
            else:
                masks[step] = self.next_mask
                action, logprob, value = policy.act(  # type: ignore[call-arg]
                    self.next_obs, action_mask=self.next_mask
                )
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
            finished=finished,
            action_masks=masks,
        )
        return rollout, finished
