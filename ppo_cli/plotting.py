"""Figures from a run directory, and the clipping figure, with matplotlib.

Figures are built on matplotlib.figure.Figure directly (never pyplot), which renders with the
Agg backend: no display, no global state, safe to call from a library or a headless server.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ppo_cli.core.rundir import FINAL_EVAL, atomic_write_bytes, read_metrics, run_env
from ppo_cli.errors import RunError, UsageError

FORMATS = ("png", "svg", "pdf")
DEFAULT_WINDOW = 10


def check_suffix(out: Path) -> str:
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise UsageError(
            f"--out {out}: unknown image type {out.suffix or '(none)'!r}", "end it in .png"
        )
    return fmt


# Written into every figure's metadata (PNG text chunk, SVG dc:creator, PDF /Creator), so a
# later plot may replace a figure ppoqa drew and never a file the user made.
CREATOR = "ppoqa figure"
MAX_OURS_BYTES = 64 * 1024 * 1024


def check_replaceable(out: Path) -> None:
    """Refuse to write over a file ppoqa did not draw (the user's image, notes, anything)."""
    if not (out.exists() or out.is_symlink()):
        return
    ours = False
    if out.is_file() and not out.is_symlink() and out.stat().st_size <= MAX_OURS_BYTES:
        try:
            ours = CREATOR.encode() in out.read_bytes()
        except OSError:
            ours = False
    if not ours:
        raise RunError(
            f"{out}: already exists and ppoqa did not draw it",
            "ppoqa never overwrites a file it did not create; pick another path with --out",
        )


def save_figure(fig: Figure, out: Path) -> Path:
    """Render to the format out's suffix names and write it atomically, replacing only a
    figure ppoqa drew earlier."""
    fmt = check_suffix(out)
    check_replaceable(out)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110, metadata={"Creator": CREATOR})
    try:
        atomic_write_bytes(out, buf.getvalue())
    except OSError as exc:
        raise RunError(f"{out}: cannot write the figure ({exc.strerror})", "choose --out") from exc
    return out


def series(records: Sequence[dict[str, Any]], key: str, x: str) -> tuple[list, list]:
    pts = [(r[x], r[key]) for r in records if r.get(key) is not None and r.get(x) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def label_panel(ax: Any, title: str, xlabel: str, ylabel: str, **ylabel_kw: Any) -> None:
    """Title, axis labels and the light grid of every panel."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel, **ylabel_kw)
    ax.grid(True, alpha=0.3)


def headroom(ax: Any, ys: Sequence[float]) -> None:
    """Room above the highest point for a two-axis panel's legend, which "best" cannot place
    (it sees one axis's lines only): the legend sits over empty space, not the curve."""
    top = max(ys, default=0.0)
    if top > 0:
        ax.set_ylim(top=1.3 * top)


def trailing_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of the last `window` values at each point (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def solved_threshold(env_id: str) -> float | None:
    """The environment's own 'solved' return from its gymnasium spec (CartPole-v1: 475)."""
    try:
        import gymnasium

        return gymnasium.spec(env_id).reward_threshold
    except Exception:  # unknown or unregistered ids simply have no line
        return None


def _loss_panel(ax: Any, records: Sequence[dict[str, Any]], x: str, xlabel: str) -> None:
    """The walkthrough's loss curve: the loss of every update epoch, then each iteration's mean."""
    ex, ey = [], []
    for i, r in enumerate(records):
        losses = r.get("epoch_losses") or []
        # Epochs of an update sit between the previous x and this one.
        x1 = r.get(x)
        if x1 is None:
            continue
        x0 = records[i - 1].get(x, 0) if i else (0 if x == "global_step" else x1 - 1)
        n = len(losses)
        for e, loss in enumerate(losses):
            ex.append(x0 + (x1 - x0) * (e + 1) / n)
            ey.append(loss)
    if ey:
        ax.plot(ex, ey, color="tab:blue", alpha=0.35, linewidth=1, label="per update epoch")
    xs, ys = series(records, "loss", x)
    ax.plot(xs, ys, color="tab:blue", linewidth=2, label="last epoch of each iteration")
    label_panel(ax, "Loss curve: policy + value − entropy terms", xlabel, "loss")
    ax.legend(fontsize=8)


def _kl_panel(ax: Any, records: Sequence[dict[str, Any]], x: str, xlabel: str) -> None:
    xs, kl = series(records, "approx_kl", x)
    ax.plot(xs, kl, color="tab:purple", label="approx_kl")
    headroom(ax, kl)
    label_panel(ax, "How far each update moved the policy", xlabel, "approx_kl", color="tab:purple")
    ax2 = ax.twinx()
    xs, cf = series(records, "clipfrac", x)
    ax2.plot(xs, cf, color="tab:orange", label="clipfrac")
    ax2.set_ylabel("clipfrac (share of samples outside the band)", color="tab:orange")
    ax2.set_ylim(0, 1)
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="upper right")


def text_run_figure(run: Path, records: Sequence[dict[str, Any]]) -> Figure:
    fig = Figure(figsize=(13, 8.5), layout="constrained")
    axes = fig.subplots(2, 2)
    x, xlabel = "iteration", "iteration"
    _loss_panel(axes[0, 0], records, x, xlabel)

    ax = axes[0, 1]
    xs, ys = series(records, "mean_reward", x)
    ax.plot(xs, ys, color="tab:green")
    label_panel(ax, "Mean episode reward (sampled answers)", xlabel, "reward per episode")
    xs, ys = series(records, "frac_reward_zero_std", x)
    if ys:  # a group estimator: the groups it learned nothing from (TRL's name)
        ax2 = ax.twinx()
        ax2.plot(xs, [100 * y for y in ys], color="tab:purple", alpha=0.7)
        ax2.set_ylim(-3, 103)
        ax2.set_ylabel("all-equal groups, % (frac_reward_zero_std)")
        ax2.yaxis.label.set_color("tab:purple")

    _accuracy_panel(axes[1, 0], records, "Accuracy: exact answers")
    _kl_panel(axes[1, 1], records, x, xlabel)
    fig.suptitle(f"PPO on text QA: {run.name}", fontsize=14, fontweight="bold")
    return fig


def _accuracy_panel(ax: Any, records: Sequence[dict[str, Any]], title: str) -> None:
    gray = (("train_accuracy", "sampled (training)"), ("token_accuracy", "next token (teacher)"))
    for key, label in gray:
        xs, ys = series(records, key, "iteration")
        if ys:
            ax.plot(xs, [100 * y for y in ys], color="tab:gray", alpha=0.7, label=label)
    xs, ys = series(records, "eval_accuracy", "iteration")
    ax.plot(
        xs, [100 * y for y in ys], color="tab:red", linewidth=2, marker=".", label="greedy (eval)"
    )
    ax.set_ylim(-3, 103)
    label_panel(ax, title, "iteration", "% correct")
    ax.legend(fontsize=8, loc="lower right")


def rlhf_run_figure(run: Path, records: Sequence[dict[str, Any]]) -> Figure:
    """PPO against a frozen reference: the score rises, the KL grows, does gold accuracy hold?"""
    fig = Figure(figsize=(13, 8.5), layout="constrained")
    axes = fig.subplots(2, 2)
    ax = axes[0, 0]
    xs, ys = series(records, "score", "iteration")
    ax.plot(xs, ys, color="tab:green", linewidth=2, label="score (reward before the KL penalty)")
    xs, ys = series(records, "mean_reward", "iteration")
    ax.plot(xs, ys, color="tab:olive", alpha=0.7, label="reward after the penalty")
    label_panel(
        ax,
        "What PPO optimizes: the score (proxy) and the penalized reward",
        "iteration",
        "per episode",
    )
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    xs, ys = series(records, "kl", "iteration")
    ax.plot(xs, ys, color="tab:purple", linewidth=2, label="kl (mean per token)")
    headroom(ax, ys)
    ax.axhline(0.0, color="gray", linewidth=0.8)
    title = "Distance from the frozen reference"
    label_panel(ax, title, "iteration", "KL(π ‖ π_ref) estimate", color="tab:purple")
    ax2 = ax.twinx()
    xs, ys = series(records, "kl_coef", "iteration")
    ax2.plot(xs, ys, color="tab:orange", linestyle="--", label="kl_coef in force")
    ax2.set_ylabel("kl_coef", color="tab:orange")
    ax2.set_ylim(bottom=0)
    headroom(ax2, ys)
    lines = [ln for ln in ax.get_lines() + ax2.get_lines() if not ln.get_label().startswith("_")]
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="upper left")

    _accuracy_panel(axes[1, 0], records, "Gold accuracy: exact answers to the dataset")
    _loss_panel(axes[1, 1], records, "iteration", "iteration")
    fig.suptitle(f"RLHF (PPO + KL penalty) on text QA: {run.name}", fontsize=14, fontweight="bold")
    return fig


def sft_run_figure(run: Path, records: Sequence[dict[str, Any]]) -> Figure:
    """Supervised warm start: cross-entropy per epoch and the accuracies it buys."""
    fig = Figure(figsize=(13, 4.8), layout="constrained")
    axes = fig.subplots(1, 2)
    xs, ys = series(records, "loss", "iteration")
    axes[0].plot(xs, ys, color="tab:blue", linewidth=2)
    label_panel(
        axes[0], "Cross-entropy on the answer tokens and <END>", "epoch", "loss (nats per token)"
    )
    _accuracy_panel(axes[1], records, "Accuracy during SFT")
    axes[1].set_xlabel("epoch")
    fig.suptitle(f"Supervised fine-tuning (ppoqa sft): {run.name}", fontsize=14, fontweight="bold")
    return fig


def _final_eval(run: Path) -> dict[str, Any] | None:
    """The run's final greedy evaluation (final_eval.json), or None for an older run."""
    import json

    try:
        doc = json.loads((run / FINAL_EVAL).read_text(encoding="utf-8"))
        float(doc["mean_return"]), int(doc["global_step"]), int(doc["episodes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


def gym_run_figure(
    run: Path, env_id: str, records: Sequence[dict[str, Any]], window: int | None
) -> Figure:
    fig = Figure(figsize=(13, 8.5), layout="constrained")
    grid = fig.add_gridspec(2, 2)
    ax = fig.add_subplot(grid[0, :])
    x, xlabel = "global_step", "environment steps"
    xs, ys = series(records, "episodic_return", x)
    if ys:
        if window is None:  # a tenth of the returns, at most 10: 24 points get 2, not 10, so
            # the smoothed line still shows the curve's shape; under 20 points, no smoothing
            window = max(1, min(DEFAULT_WINDOW, len(ys) // 10))
        ax.plot(xs, ys, color="tab:blue", alpha=0.3, label="episodic return")
        if window > 1:
            smoothed, label = trailing_mean(ys, window), f"smoothed (mean of last {window})"
            ax.plot(xs, smoothed, color="tab:blue", linewidth=2, label=label)
    else:
        ax.text(0.5, 0.5, "no episode finished yet", ha="center", transform=ax.transAxes)
    final = _final_eval(run)
    if final is not None:  # the greedy policy after training, as `ppoqa eval` measures it
        ax.errorbar(
            [final["global_step"]],
            [final["mean_return"]],
            yerr=[final.get("std_return", 0.0)],
            color="tab:red",
            marker="*",
            markersize=14,
            capsize=4,
            linestyle="none",
            label=f"final greedy eval ({final['mean_return']:.3g}, {final['episodes']} episodes)",
        )
    threshold = solved_threshold(env_id)
    if threshold is not None:
        ax.axhline(threshold, color="tab:green", linestyle="--", linewidth=2)
        ax.plot([], [], color="tab:green", linestyle="--", label=f"solved ({threshold:g})")
    label_panel(ax, f"Episodic return on {env_id}", xlabel, "return")
    ax.legend(fontsize=9, loc="lower right")
    _loss_panel(fig.add_subplot(grid[1, 0]), records, x, xlabel)
    _kl_panel(fig.add_subplot(grid[1, 1]), records, x, xlabel)
    fig.suptitle(f"PPO on {env_id}: {run.name}", fontsize=14, fontweight="bold")
    return fig


def run_figure(run: Path, window: int | None = None) -> Figure:
    """The training figure of a run: text QA or gymnasium, read from its config and metrics."""
    if window is not None and window < 1:
        raise UsageError("--window must be at least 1", "e.g. --window 10")
    env = run_env(run)
    records = read_metrics(run)
    if not records:
        raise RunError(f"{run}: metrics.jsonl has no records yet", "train for an iteration first")
    if env == "text-qa":
        if records[0].get("phase") == "sft":
            fig = sft_run_figure(run, records)
        elif any("kl" in r for r in records):
            fig = rlhf_run_figure(run, records)
        else:
            fig = text_run_figure(run, records)
        from matplotlib.ticker import MaxNLocator

        for ax in fig.axes:  # iterations and epochs are counted: no 1.2, 1.4, ... ticks
            if ax.get_xlabel() in ("iteration", "epoch"):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return fig
    return gym_run_figure(run, env, records, window)


def plot_run(run: Path, out: Path | None = None, window: int | None = None) -> Path:
    """Write the run's training figure to out (default <run>/training.png)."""
    if out is not None:
        check_suffix(out)
    return save_figure(run_figure(run, window), out if out is not None else run / "training.png")


def plot_clip(out: Path, clip_coef: float = 0.2) -> Path:
    check_suffix(out)
    return save_figure(clip_figure(clip_coef), out)


def clip_figure(clip_coef: float = 0.2) -> Figure:
    """The clipping figure: the clipped ratio and the clipped objective for A > 0 and A < 0,
    drawn through ppo.clipped_surrogate (the loss's own code)."""
    import torch

    from ppo_cli.core.ppo import clipped_surrogate

    if not (0.0 < clip_coef < 1.0):
        raise UsageError(f"--clip-coef must be within (0, 1), got {clip_coef!r}", "e.g. 0.2")
    lo, hi = 1 - clip_coef, 1 + clip_coef
    r = torch.linspace(0.0, 2.0, 401)  # [401] ratios
    fig = Figure(figsize=(16, 5), layout="constrained")
    axes = fig.subplots(1, 3)

    ax = axes[0]
    ax.plot(r, r, color="tab:blue", linestyle="--", label="ratio r")
    ax.plot(r, torch.clamp(r, lo, hi), color="tab:red", linewidth=3, label="clip(r, 1−ε, 1+ε)")
    ax.axhspan(lo, hi, color="tab:green", alpha=0.15, label=f"allowed band [{lo:g}, {hi:g}]")
    title = f"The ratio is clipped to [1−ε, 1+ε], ε = {clip_coef:g}"
    label_panel(ax, title, "ratio r = π_new(a|s) / π_old(a|s)", "ratio used in the clipped term")
    ax.set_xlim(0, 2)
    ax.set_ylim(0, 2)
    ax.legend(fontsize=9, loc="upper left")

    for ax, adv, words in (
        (axes[1], 1.0, "A = +1: a better-than-expected action"),
        (axes[2], -1.0, "A = −1: a worse-than-expected action"),
    ):
        unclipped, _, objective = clipped_surrogate(r, torch.full_like(r, adv), clip_coef)
        ax.plot(r, unclipped, color="tab:blue", linestyle="--", label="r·A (unclipped)")
        ax.plot(r, objective, color="tab:red", linewidth=3, label="min(r·A, clip(r)·A): PPO")
        ax.axvspan(lo, hi, color="tab:green", alpha=0.15, label="band")
        flat = (hi, 2.0) if adv > 0 else (0.0, lo)
        ax.axvspan(*flat, color="tab:gray", alpha=0.12, label="flat: no gradient")
        ax.axvline(1.0, color="gray", linestyle=":")
        label_panel(ax, f"Objective, {words}", "ratio r", "objective (PPO maximizes it)")
        ax.set_xlim(0, 2)
        ax.legend(fontsize=9, loc="upper left" if adv > 0 else "lower left")
    fig.suptitle("PPO clipping", fontsize=14, fontweight="bold")
    return fig
