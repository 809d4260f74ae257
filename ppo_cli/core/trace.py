"""Training traces: the episodes, advantages and clipping of a real PPO update, as plain data.

The trainer creates a TraceRecorder for an iteration it traces and passes
`recorder.on_minibatch` to ppo.ppo_update; afterwards a builder turns the rollout, the batch
and the recorder into one record (dicts, lists, floats) that the CLI renders and `--json`
embeds. Rows are capped so a trace stays readable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ppo_cli.core.gae import normalize
from ppo_cli.core.ppo import Batch, LossParts, clipped_surrogate
from ppo_cli.errors import UsageError

MAX_EPISODES = 3  # episodes (and their steps) shown per traced iteration
PER_EPOCH_CLIPPED = 2  # clipping-trace rows per epoch with |ratio - 1| > clip_coef ...
PER_EPOCH_INSIDE = 2  # ... and rows inside the band
OBS_NUMBERS = 4  # gymnasium observations are summarized by their first numbers


NORM_EPS = 1e-8  # the eps of ppo_cli.core.gae.normalize
STD_CONVENTION = "unbiased sample std (divides by N-1), as torch.std and ppo_cli.core.gae.normalize"


def rounded(x: float) -> float:
    """Six decimals are more than float32 carries; +0.0 turns -0.0 into 0.0."""
    return round(float(x), 6) + 0.0


def normalization(advantages: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, Any]:
    """What ppo_update does to advantages before the loss: gae.normalize over the valid steps."""
    if mask is None:
        mask = torch.ones_like(advantages, dtype=torch.bool)
    mask = mask.bool()
    valid = advantages[mask]
    normed = normalize(advantages, mask)
    std = float(valid.std()) if valid.numel() >= 2 else None
    return {
        "count": int(valid.numel()),
        "mean": rounded(valid.mean()),
        "std": None if std is None else rounded(std),
        "std_convention": STD_CONVENTION,
        "eps": NORM_EPS,
        "note": (
            "fewer than 2 values: normalize only subtracts the mean"
            if std is None
            else "(advantage - mean) / (std + eps)"
        ),
        "_normalized": normed,
    }


def public(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if not k.startswith("_")}


@dataclass(frozen=True)
class TraceSelection:
    """Which iterations to trace: numbers, and/or the first, the last, or all of them."""

    numbers: frozenset[int] = frozenset()
    first: bool = True
    last: bool = True
    every: bool = False

    def wants(self, iteration: int, total: int) -> bool:
        return (
            self.every
            or iteration in self.numbers
            or (self.first and iteration == 1)
            or (self.last and iteration == total)
        )


def parse_trace_iterations(text: str | None) -> TraceSelection:
    """'1,10,50', 'first', 'last', 'all' or a mix; None means 'first,last'."""
    if text is None:
        return TraceSelection()
    numbers: set[int] = set()
    first = last = every = False
    items = [x.strip().lower() for x in text.split(",")]
    if not any(items):
        raise UsageError("--trace-iterations is empty", "e.g. --trace-iterations 1,10,last")
    for item in items:
        if item == "first":
            first = True
        elif item == "last":
            last = True
        elif item == "all":
            every = True
        elif item.isdigit() and int(item) >= 1:
            numbers.add(int(item))
        else:
            raise UsageError(
                f"--trace-iterations: {item!r} is not an iteration number, first, last or all",
                "e.g. --trace-iterations 1,10,last",
            )
    return TraceSelection(frozenset(numbers), first, last, every)


@dataclass
class TraceRecorder:
    """Collects, from ppo_update's on_minibatch hook, a few per-sample clipping rows per epoch
    and each epoch's mean diagnostics."""

    clip_coef: float
    action_label: Callable[[torch.Tensor], str] = lambda a: str(a.tolist())
    per_epoch_clipped: int = PER_EPOCH_CLIPPED
    per_epoch_inside: int = PER_EPOCH_INSIDE
    wanted: bool = True  # False: recorded in case this iteration turns out to be the last
    rows: list[dict[str, Any]] = field(default_factory=list)
    _epoch_stats: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    _taken: dict[tuple[int, bool], int] = field(default_factory=dict)

    def on_minibatch(self, epoch: int, k: int, mb: Batch, parts: LossParts) -> None:
        stats = self._epoch_stats.setdefault(epoch, {})
        for key in ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac"):
            stats.setdefault(key, []).append(float(getattr(parts, key).detach()))
        ratio = parts.ratio.detach()  # same shape as mb.actions' sample dims
        valid = mb.mask.bool()
        outside = ((ratio - 1).abs() > self.clip_coef) & valid
        for is_clipped, where, cap in (
            (True, outside, self.per_epoch_clipped),
            (False, valid & ~outside, self.per_epoch_inside),
        ):
            need = cap - self._taken.get((epoch, is_clipped), 0)
            if need <= 0:
                continue
            picks = where.nonzero()[:need]  # [K, ndim] indices into the minibatch
            self._taken[(epoch, is_clipped)] = self._taken.get((epoch, is_clipped), 0) + len(picks)
            for pos in picks:
                idx = tuple(int(p) for p in pos)
                r = ratio[idx]
                adv = mb.advantages[idx]
                unclipped, clipped, objective = clipped_surrogate(r, adv, self.clip_coef)
                u, c = float(unclipped), float(clipped)
                old = float(mb.old_logprobs[idx])
                self.rows.append(
                    {
                        "epoch": epoch + 1,
                        "minibatch": k + 1,
                        "sample": f"{idx[0]},t{idx[1]}" if len(idx) == 2 else str(idx[0]),
                        "action": self.action_label(mb.actions[idx]),
                        "old_logprob": rounded(old),
                        "new_logprob": rounded(old + float(torch.log(r))),
                        "ratio": rounded(r),
                        "advantage": rounded(adv),
                        "unclipped": rounded(u),
                        "clipped": rounded(c),
                        "objective": rounded(objective),
                        "chosen": "equal" if u == c else ("clipped" if c < u else "unclipped"),
                        "is_clipped": is_clipped,
                    }
                )

    def clipping(self) -> dict[str, Any]:
        rows = sorted(self.rows, key=lambda r: (r["epoch"], r["minibatch"]))
        return {
            "clip_coef": self.clip_coef,
            "selection": (
                f"Per epoch up to {self.per_epoch_clipped} samples outside the band and "
                f"{self.per_epoch_inside} inside, the first found; sample: row in its "
                "minibatch (and step t)"
            ),
            "rows": rows,
        }

    def epochs(self) -> list[dict[str, Any]]:
        return [
            {"epoch": e + 1, **{k: rounded(sum(v) / len(v)) for k, v in stats.items()}}
            for e, stats in sorted(self._epoch_stats.items())
        ]


def _normalized(batch: Batch, norm_adv: bool) -> tuple[dict[str, Any], torch.Tensor]:
    norm = normalization(batch.advantages, batch.mask)
    normed = norm["_normalized"] if norm_adv else batch.advantages
    out = public(norm)
    if not norm_adv:
        out["note"] = "--no-norm-adv: the loss uses the raw advantages"
    return out, normed


def text_qa_trace(
    iteration: int,
    rollout: Any,
    batch: Batch,
    deltas: torch.Tensor,
    recorder: TraceRecorder,
    itos: list[str],
    questions: list[str],
    norm_adv: bool = True,
    max_episodes: int = MAX_EPISODES,
) -> dict[str, Any]:
    """The trace record of one text-QA iteration (rollout: rollout.TextRollout)."""
    norm, normed = _normalized(batch, norm_adv)
    episodes, steps = [], []
    for i in range(min(max_episodes, batch.size)):
        n = int(rollout.mask[i].sum())
        tokens = [itos[int(a)] for a in rollout.actions[i, :n]]
        rewards = [rounded(x) for x in rollout.rewards[i, :n]]
        # RLHF: each step's reward = score (task score at the end, step penalty before) minus
        # kl_coef * KL_t (ppo_cli.textqa.rlhf.apply_kl_penalty)
        split = getattr(rollout, "scores", None) is not None
        if split:
            scores = [rounded(x) for x in rollout.scores[i, :n]]
            kls = [rounded(x) for x in rollout.kl[i, :n]]
            penalties = [rounded(-rollout.kl_coef * x) for x in rollout.kl[i, :n]]
        episodes.append(
            {
                "episode": i,
                "question": questions[int(rollout.question_idx[i])],
                "tokens": tokens,
                "rewards": rewards,
                "total": rounded(sum(rewards)),
                "correct": bool(rollout.exact[i]),
            }
            | (
                {"score": rounded(sum(scores)), "kl_penalty": rounded(sum(penalties))}
                if split
                else {}
            )
        )
        for t in range(n):
            steps.append(
                {
                    "episode": i,
                    "t": t,
                    "label": tokens[t],
                    **(
                        {"score": scores[t], "kl": kls[t], "kl_penalty": penalties[t]}
                        if split
                        else {}
                    ),
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
        **({"kl_coef": rollout.kl_coef} if getattr(rollout, "scores", None) is not None else {}),
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


def summarize_obs(obs: torch.Tensor, numbers: int = OBS_NUMBERS) -> str:
    """'[0.03, -0.01, 0.04, 0.02, …]': enough to recognize a state, short enough for a row."""
    flat = obs.detach().float().reshape(-1)
    shown = ", ".join(f"{float(x):.2f}" for x in flat[:numbers])
    return f"[{shown}{', …' if flat.numel() > numbers else ''}]"


def start_trace(
    cb: Any,
    iteration: int,
    total: int,
    clip_coef: float,
    action_label: Callable[[torch.Tensor], str] | None = None,
    may_stop_early: bool = False,
) -> TraceRecorder | None:
    """A recorder when the callbacks want this iteration traced, else None (the common case).

    When the last iteration is wanted and training may stop early, every iteration records
    (cheap, capped) with wanted=False, and only the one that turns out to be the last is shown.
    """
    wants = getattr(cb, "wants_trace", None)
    if wants is None:
        return None
    wanted = wants(iteration, total)
    if not (wanted or (may_stop_early and wants(total, total))):
        return None
    label = {} if action_label is None else {"action_label": action_label}
    return TraceRecorder(clip_coef, **label, wanted=wanted)


def batch_trace(
    iteration: int,
    batch: Batch,
    rewards: torch.Tensor,
    dones: torch.Tensor,
    deltas: torch.Tensor,
    recorder: TraceRecorder,
    norm_adv: bool = True,
    valid: torch.Tensor | None = None,
    max_episodes: int = MAX_EPISODES,
    max_steps: int = 12,
) -> dict[str, Any]:
    """The trace record of one iteration on any environment whose batch is flat steps.

    rewards, dones, deltas, valid: [num_steps, num_envs], time-major. The batch holds the valid
    steps flattened in time-major order (x[valid], or x.reshape(-1) when every step is valid,
    CleanRL's b_* layout). Shows env 0's first steps and the first episodes that ended.
    """
    num_steps, num_envs = rewards.shape
    if valid is None:
        valid = torch.ones(num_steps, num_envs, dtype=torch.bool)
    valid = valid.bool().cpu()
    # sample index of step (t, e) in the batch, -1 where the step is not in it
    index = torch.full((num_steps, num_envs), -1, dtype=torch.long)  # [T, E]
    index[valid] = torch.arange(int(valid.sum()))
    norm, normed = _normalized(batch, norm_adv)
    steps = []
    for t in range(num_steps):
        i = int(index[t, 0])
        if i < 0:
            continue
        if len(steps) == max_steps:
            break
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
            idx = [int(index[s, e]) for s in range(first, t + 1) if bool(valid[s, e])]
            if len(episodes) < max_episodes and idx:
                acts = [recorder.action_label(batch.actions[j]) for j in idx]
                span = range(first, t + 1)
                ep_rewards = [rounded(rewards[s, e]) for s in span if bool(valid[s, e])]
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


MAX_GROUPS = 2  # groups of completions shown per traced iteration


def group_trace(
    rollout: Any,
    batch: Batch,
    groups: torch.Tensor,
    itos: list[str],
    questions: list[str],
    estimator: str,
    max_groups: int = MAX_GROUPS,
) -> dict[str, Any]:
    """The first groups of a grouped batch (rollout: rollout.TextRollout; groups [N] ids, a
    group's completions side by side): each completion, its reward and the advantage the
    estimator gave it (its first token's: the whole answer's for the group estimators)."""
    shown = []
    mask = rollout.mask
    reward = (rollout.rewards * mask).sum(1)  # [N]
    for g in range(min(max_groups, int(groups.max()) + 1 if groups.numel() else 0)):
        rows = (groups == g).nonzero().flatten().tolist()
        completions = []
        for i in rows:
            n = int(mask[i].sum())
            words = [itos[int(a)] for a in rollout.actions[i, :n]]
            completions.append(
                {
                    "episode": i,
                    "answer": " ".join(w for w in words if w != "<END>"),
                    "reward": rounded(reward[i]),
                    "advantage": rounded(batch.advantages[i, 0]),
                    "correct": bool(rollout.exact[i]),
                }
            )
        shown.append(
            {
                "group": g + 1,
                "question": questions[int(rollout.question_idx[rows[0]])],
                "completions": completions,
            }
        )
    return {"estimator": estimator, "groups": shown}
