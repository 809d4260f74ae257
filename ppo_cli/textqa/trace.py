"""Traces of a text-QA update: episodes token by token, and a question's completions side by
side (the records the CLI renders and `--json` embeds)."""

from __future__ import annotations

from typing import Any

import torch

from ppo_cli.core.ppo import Batch
from ppo_cli.core.trace import MAX_EPISODES, TraceRecorder, normalized_advantages, rounded
from ppo_cli.textqa.data import END_ID


def text_qa_trace(
    iteration: int,
    rollout: Any,
    batch: Batch,
    deltas: torch.Tensor,
    recorder: TraceRecorder,
    itos: list[str],
    questions: list[str],
    norm_adv: bool = True,
) -> dict[str, Any]:
    """The trace record of one text-QA iteration (rollout: rollout.TextRollout)."""
    norm, normed = normalized_advantages(batch, norm_adv)
    # RLHF: each step's reward is its score (task score at the end, step penalty before) minus
    # kl_coef * KL_t (ppo_cli.textqa.rlhf.apply_kl_penalty)
    split = getattr(rollout, "scores", None) is not None
    episodes, steps = [], []
    for i in range(min(MAX_EPISODES, batch.size)):
        n = int(rollout.mask[i].sum())
        tokens = [itos[int(a)] for a in rollout.actions[i, :n]]
        rewards = [rounded(x) for x in rollout.rewards[i, :n]]
        kl: list[dict[str, Any]] = [{} for _ in range(n)]
        if split:
            kl = [
                {"score": rounded(s), "kl": rounded(k), "kl_penalty": rounded(-rollout.kl_coef * k)}
                for s, k in zip(rollout.scores[i, :n], rollout.kl[i, :n], strict=True)
            ]
        episode = {
            "episode": i,
            "question": questions[int(rollout.question_idx[i])],
            "tokens": tokens,
            "rewards": rewards,
            "total": rounded(sum(rewards)),
            "correct": bool(rollout.exact[i]),
        }
        if split:
            episode["score"] = rounded(sum(step["score"] for step in kl))
            episode["kl_penalty"] = rounded(sum(step["kl_penalty"] for step in kl))
        episodes.append(episode)
        for t in range(n):
            steps.append(
                {
                    "episode": i,
                    "t": t,
                    "label": tokens[t],
                    **kl[t],
                    "reward": rewards[t],
                    "done": bool(rollout.dones[i, t]),
                    "value": rounded(batch.old_values[i, t]),
                    "delta": rounded(deltas[i, t]),
                    "advantage": rounded(batch.advantages[i, t]),
                    "return": rounded(batch.returns[i, t]),
                    "normalized": rounded(normed[i, t]),
                }
            )
    return {
        "iteration": iteration,
        "kind": "text-qa",
        **({"kl_coef": rollout.kl_coef} if split else {}),
        "batch_episodes": batch.size,
        "replayed_episodes": int(getattr(rollout, "num_replayed", 0)),  # of batch_episodes
        "batch_steps": int(batch.mask.sum()),
        "episodes": episodes,
        "step_label": "token",
        "steps": steps,
        "normalization": norm,
        "clipping": recorder.clipping(),
        "epochs": recorder.epochs(),
    }


def group_trace(
    rollout: Any,
    batch: Batch,
    groups: torch.Tensor,
    itos: list[str],
    questions: list[str],
    estimator: str,
) -> dict[str, Any]:
    """The first groups of a grouped batch (rollout: rollout.TextRollout; groups [N] ids, a
    group's completions side by side): each completion, its reward and the advantage the
    estimator gave it (its first token's: the whole answer's for the group estimators)."""
    shown = []
    mask = rollout.mask
    reward = (rollout.rewards * mask).sum(1)  # [N]
    for g in range(min(2, int(groups.max()) + 1 if groups.numel() else 0)):  # the first two
        rows = (groups == g).nonzero().flatten().tolist()
        completions = [
            {
                "episode": i,
                "answer": " ".join(
                    itos[int(a)] for a in rollout.actions[i][mask[i]] if a != END_ID
                ),
                "reward": rounded(reward[i]),
                "advantage": rounded(batch.advantages[i, 0]),
                "correct": bool(rollout.exact[i]),
            }
            for i in rows
        ]
        shown.append(
            {
                "group": g + 1,
                "question": questions[int(rollout.question_idx[rows[0]])],
                "completions": completions,
            }
        )
    return {"estimator": estimator, "groups": shown}
