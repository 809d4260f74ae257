"""Traces of a gymnasium update: the steps of one env, advantages and clipping (the records
the CLI renders and `--json` embeds)."""

from __future__ import annotations

from typing import Any

import torch

from ppo_cli.core.ppo import Batch
from ppo_cli.core.trace import MAX_EPISODES, TraceRecorder, normalized_advantages, rounded

MAX_STEPS = 12  # steps of env 0 shown per traced iteration


def summarize_obs(obs: torch.Tensor, numbers: int = 4) -> str:
    """'[0.03, -0.01, 0.04, 0.02, …]': the first numbers, enough to recognize a state."""
    flat = obs.detach().float().reshape(-1)
    shown = ", ".join(f"{float(x):.2f}" for x in flat[:numbers])
    return f"[{shown}{', …' if flat.numel() > numbers else ''}]"


def batch_trace(
    iteration: int,
    batch: Batch,
    rewards: torch.Tensor,
    dones: torch.Tensor,
    deltas: torch.Tensor,
    recorder: TraceRecorder,
    norm_adv: bool = True,
    *,
    valid: torch.Tensor,
) -> dict[str, Any]:
    """The trace record of one iteration whose batch is the valid steps of [num_steps, num_envs]
    tensors, flattened time-major: env 0's first steps and the first episodes that ended."""
    num_steps, num_envs = rewards.shape
    valid = valid.bool().cpu()
    # sample index of step (t, e) in the batch, -1 where the step is not in it
    index = torch.full((num_steps, num_envs), -1, dtype=torch.long)  # [T, E]
    index[valid] = torch.arange(int(valid.sum()))
    norm, normed = normalized_advantages(batch, norm_adv)
    steps = []
    for t in [s for s in range(num_steps) if int(index[s, 0]) >= 0][:MAX_STEPS]:
        i = int(index[t, 0])
        steps.append(
            {
                "episode": "env 0",
                "t": t,
                "label": summarize_obs(batch.obs[i]),
                "reward": rounded(rewards[t, 0]),
                "done": bool(dones[t, 0]),
                "value": rounded(batch.old_values[i]),
                "delta": rounded(deltas[t, 0]),
                "advantage": rounded(batch.advantages[i]),
                "return": rounded(batch.returns[i]),
                "normalized": rounded(normed[i]),
            }
        )
    episodes = []
    for e in range(num_envs):
        first = 0
        for t in range(num_steps):
            if not (bool(dones[t, e]) and bool(valid[t, e])):
                continue
            span = [s for s in range(first, t + 1) if bool(valid[s, e])]
            idx = [int(index[s, e]) for s in span]
            if len(episodes) < MAX_EPISODES and idx:
                acts = [recorder.action_label(batch.actions[j]) for j in idx]
                ep_rewards = [rounded(rewards[s, e]) for s in span]
                episodes.append(
                    {
                        # '+': it ended in the rollout's first stretch, so it may have begun
                        # in the previous rollout
                        "episode": f"env {e}, steps {first}-{t}" + ("+" if first == 0 else ""),
                        "question": summarize_obs(batch.obs[idx[0]]),
                        "tokens": acts[:8] + (["…"] if len(acts) > 8 else []),
                        "rewards": ep_rewards[:8],
                        "total": rounded(sum(ep_rewards)),
                        "correct": None,
                    }
                )
            first = t + 1
    return {
        "iteration": iteration,
        "kind": "gym",
        "batch_episodes": f"{num_envs} envs × {num_steps} steps",
        "batch_steps": batch.size,
        "episodes": episodes,
        "step_label": "observation",
        "steps": steps,
        "normalization": norm,
        "clipping": recorder.clipping(),
        "epochs": recorder.epochs(),
    }
