"""Training traces: the episodes, advantages and clipping of a real PPO update, as plain data
(capped rows) that the CLI renders and `--json` embeds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ppo_cli.core.gae import normalize
from ppo_cli.core.ppo import STATS, Batch, LossParts, clipped_surrogate
from ppo_cli.errors import UsageError

MAX_EPISODES = 3  # episodes (and their steps) shown per traced iteration
PER_EPOCH_CLIPPED = 2  # clipping-trace rows per epoch with |ratio - 1| > clip_coef ...
PER_EPOCH_INSIDE = 2  # ... and rows inside the band
STD_CONVENTION = "unbiased sample std (divides by N-1), as torch.std and ppo_cli.core.gae.normalize"


def rounded(x: float) -> float:
    """Six decimals are more than float32 carries; +0.0 turns -0.0 into 0.0."""
    return round(float(x), 6) + 0.0


def normalization(advantages: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, Any]:
    """What ppo_update does to advantages before the loss: gae.normalize over the valid steps."""
    mask = torch.ones_like(advantages, dtype=torch.bool) if mask is None else mask.bool()
    valid = advantages[mask]
    normed = normalize(advantages, mask)
    std = float(valid.std()) if valid.numel() >= 2 else None
    return {
        "count": int(valid.numel()),
        "mean": rounded(valid.mean()),
        "std": None if std is None else rounded(std),
        "std_convention": STD_CONVENTION,
        "eps": 1e-8,  # the eps of ppo_cli.core.gae.normalize
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
    items = [x.strip().lower() for x in text.split(",")]
    if not any(items):
        raise UsageError("--trace-iterations is empty", "e.g. --trace-iterations 1,10,last")
    for item in items:
        if item not in ("first", "last", "all") and not (item.isdigit() and int(item) >= 1):
            raise UsageError(
                f"--trace-iterations: {item!r} is not an iteration number, first, last or all",
                "e.g. --trace-iterations 1,10,last",
            )
    numbers = frozenset(int(x) for x in items if x.isdigit())
    return TraceSelection(numbers, "first" in items, "last" in items, "all" in items)


@dataclass
class TraceRecorder:
    """Collects, from ppo_update's on_minibatch hook, a few per-sample clipping rows per epoch
    and each epoch's mean diagnostics."""

    clip_coef: float
    action_label: Callable[[torch.Tensor], str]
    wanted: bool = True  # False: recorded in case this iteration turns out to be the last
    rows: list[dict[str, Any]] = field(default_factory=list)
    _epoch_stats: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    _taken: dict[tuple[int, bool], int] = field(default_factory=dict)

    def on_minibatch(self, epoch: int, k: int, mb: Batch, parts: LossParts) -> None:
        stats = self._epoch_stats.setdefault(epoch, {})
        for key in STATS:
            stats.setdefault(key, []).append(float(getattr(parts, key).detach()))
        ratio = parts.ratio.detach()  # same shape as mb.actions' sample dims
        valid = mb.mask.bool()
        outside = ((ratio - 1).abs() > self.clip_coef) & valid
        for is_clipped, where, cap in (
            (True, outside, PER_EPOCH_CLIPPED),
            (False, valid & ~outside, PER_EPOCH_INSIDE),
        ):
            taken = self._taken.get((epoch, is_clipped), 0)
            picks = where.nonzero()[: cap - taken]  # [K, ndim] indices into the minibatch
            self._taken[(epoch, is_clipped)] = taken + len(picks)
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
                f"Per epoch up to {PER_EPOCH_CLIPPED} samples outside the band and "
                f"{PER_EPOCH_INSIDE} inside, the first found; sample: row in its "
                "minibatch (and step t)"
            ),
            "rows": rows,
        }

    def epochs(self) -> list[dict[str, Any]]:
        return [
            {"epoch": e + 1, **{k: rounded(sum(v) / len(v)) for k, v in stats.items()}}
            for e, stats in sorted(self._epoch_stats.items())
        ]


def normalized_advantages(batch: Batch, norm_adv: bool) -> tuple[dict[str, Any], torch.Tensor]:
    """What a trace shows of the normalization, and the advantages the loss really used."""
    norm = normalization(batch.advantages, batch.mask)
    normed = norm["_normalized"] if norm_adv else batch.advantages
    out = public(norm)
    if not norm_adv:
        out["note"] = "--no-norm-adv: the loss uses the raw advantages"
    return out, normed


def start_trace(
    cb: Any,
    iteration: int,
    total: int,
    clip_coef: float,
    action_label: Callable[[torch.Tensor], str] = lambda a: str(a.tolist()),
    may_stop_early: bool = False,
) -> TraceRecorder | None:
    """A recorder when the callbacks want this iteration traced, else None. When the last one is
    wanted and training may stop early, every iteration records with wanted=False."""
    wants = getattr(cb, "wants_trace", None)
    if wants is None:
        return None
    wanted = wants(iteration, total)
    if not (wanted or (may_stop_early and wants(total, total))):
        return None
    return TraceRecorder(clip_coef, action_label, wanted=wanted)
