"""`ppoqa compare`: advantage estimators side by side on one dataset, several seeds each, at
the same number of sampled completions; IQM and 95 % bootstrap CIs over seeds (sweep.stats).

Every run trains as `ppoqa train --advantage NAME --seed S` would, with the same completions
per iteration and iteration budget for all and no early stop, so the curves share their x axis.
Each estimator runs in a forked process (its own peak memory), its seeds in turn; training is
seeded, so the same command gives the same report (wall times aside).
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ppo_cli.errors import UsageError
from ppo_cli.sweep.stats import bootstrap_ci, iqm, iqm_band

DEFAULT_ESTIMATORS = ("gae", "grpo", "rloo", "reinforce_pp")
DEFAULT_EPISODES = 64  # completions per iteration: a multiple of every default group size


@dataclass
class CompareSpec:
    estimators: Sequence[str] = DEFAULT_ESTIMATORS
    seeds: int = 5
    dataset: str | None = None
    iterations: int = 8
    num_episodes: int = DEFAULT_EPISODES


def check_spec(spec: CompareSpec) -> None:
    """Refuse a comparison that cannot be fair before anything trains."""
    from ppo_cli.presets import estimator_defaults
    from ppo_cli.textqa.estimators import NAMES

    for name in spec.estimators:
        if name not in NAMES:
            raise UsageError(
                f"--estimators: unknown estimator {name!r}", f"choose from {', '.join(NAMES)}"
            )
    if len(set(spec.estimators)) != len(spec.estimators):
        raise UsageError("--estimators names one twice", "list each estimator once")
    if spec.seeds < 1 or spec.iterations < 1 or spec.num_episodes < 1:
        raise UsageError(
            "--seeds, --iterations and --num-episodes must be at least 1", "e.g. --seeds 5"
        )
    for name in spec.estimators:
        g = int(estimator_defaults(name).get("group_size", 1))
        if spec.num_episodes % g:
            raise UsageError(
                f"--num-episodes {spec.num_episodes} is not a multiple of {name}'s group size "
                f"{g}: the estimators would sample different numbers of completions",
                "use a multiple of 8 (e.g. 64)",
            )


def _run_estimator(name: str, spec: CompareSpec, root: str) -> dict[str, Any]:
    """All seeds of one estimator (in a forked process): curves, wall time, peak RSS."""
    from ppo_cli.config import resolve
    from ppo_cli.core.rundir import read_metrics
    from ppo_cli.core.trainer import train

    runs = []
    for seed in range(spec.seeds):
        flags: dict[str, Any] = {
            "advantage": name,
            "seed": seed,
            "iterations": spec.iterations,
            "num_episodes": spec.num_episodes,
            "target_accuracy": None,
            "stall_iterations": 0,
        }
        if spec.dataset is not None:
            flags["dataset"] = spec.dataset
        cfg = resolve(flags)
        run_dir = Path(root) / f"{name}-{seed}"
        t0 = time.perf_counter()
        result = train(cfg, run_dir)
        wall = time.perf_counter() - t0
        recs = read_metrics(run_dir)
        runs.append(
            {
                "seed": seed,
                "completions": [r["episodes"] for r in recs],
                "accuracy": [r["eval_accuracy"] for r in recs],
                "train_seconds": result.wall_seconds,
                "command_seconds": wall,
            }
        )
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"runs": runs, "peak_rss_mb": peak_kb / 1024}


def _completions_to_solve(completions: list[int], accuracy: list[float]) -> float:
    """Completions sampled when greedy accuracy first reached 100 % (inf: never)."""
    pairs = zip(completions, accuracy, strict=True)
    return next((float(n) for n, acc in pairs if acc >= 1.0), float("inf"))


def _interval(scores: list[float]) -> dict[str, Any]:
    # an unsolved seed (inf) counts as very large: the IQM may still be finite
    scores = [s if np.isfinite(s) else 1e12 for s in scores]
    center = iqm(scores)
    lo, hi = bootstrap_ci(scores)
    big = 1e11
    return {
        "iqm": None if center > big else round(center, 4),
        "ci95": [None if lo > big else round(lo, 4), None if hi > big else round(hi, 4)],
    }


def compare(spec: CompareSpec, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the grid and return the report (plain values; `curves` for the figures)."""
    check_spec(spec)
    import torch  # noqa: F401  once here, not in every forked process

    ctx = multiprocessing.get_context("fork")
    report: dict[str, Any] = {
        "dataset": spec.dataset or "built-in",
        "seeds": spec.seeds,
        "iterations": spec.iterations,
        "completions_per_iteration": spec.num_episodes,
        "completions_per_run": spec.iterations * spec.num_episodes,
        "estimators": {},
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ppoqa-compare-") as root:
        for name in spec.estimators:
            if progress is not None:
                progress(f"{name}: {spec.seeds} seed(s) x {spec.iterations} iterations")
            with ctx.Pool(1) as pool:  # a fresh process: its own peak memory
                done = pool.apply(_run_estimator, (name, spec, root))
            report["estimators"][name] = _summarize(name, done)
    report["wall_seconds"] = round(time.perf_counter() - started, 2)
    return report


def _summarize(name: str, done: dict[str, Any]) -> dict[str, Any]:
    from ppo_cli.presets import estimator_defaults

    runs = done["runs"]
    final = [r["accuracy"][-1] for r in runs]
    auc = [float(np.mean(r["accuracy"])) for r in runs]
    to_solve = [_completions_to_solve(r["completions"], r["accuracy"]) for r in runs]
    train_s = [r["train_seconds"] for r in runs]
    iters = len(runs[0]["accuracy"])
    curves = np.asarray([r["accuracy"] for r in runs], dtype=float)  # [seeds, iterations]
    center, lo, hi = iqm_band(curves)
    return {
        "settings": estimator_defaults(name),
        "solved_seeds": sum(1 for s in to_solve if np.isfinite(s)),
        "final_accuracy": _interval(final),
        "accuracy_auc": _interval(auc),
        "completions_to_solve": _interval(to_solve),
        # time: wall seconds (this machine, its load); not part of the reproducible report
        "wall": {
            "train_seconds_mean": round(float(np.mean(train_s)), 3),
            "seconds_per_iteration": round(float(np.mean(train_s)) / iters, 4),
            "peak_rss_mb": round(done["peak_rss_mb"], 1),
        },
        "curve": {
            "completions": runs[0]["completions"],
            "iqm": [round(float(x), 4) for x in center],
            "lo": [round(float(x), 4) for x in lo],
            "hi": [round(float(x), 4) for x in hi],
        },
        "per_seed": [
            {
                "seed": r["seed"],
                "final_accuracy": f,
                "completions_to_solve": None if not np.isfinite(s) else int(s),
            }
            for r, f, s in zip(runs, final, to_solve, strict=True)
        ],  # fmt: skip
    }


FIGURES = ("accuracy_vs_completions.png", "cost.png")


def check_figures_writable(out_dir: Path) -> None:
    """Before any training: the folder can hold the figures, and none of them would replace
    a file ppoqa did not draw."""
    from ppo_cli.errors import RunError
    from ppo_cli.plotting import check_replaceable

    if out_dir.exists() and not out_dir.is_dir():
        raise RunError(f"{out_dir}: is a file, not a folder for the figures", "pass --out DIR")
    for name in FIGURES:
        check_replaceable(out_dir / name)


def compare_figures(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """accuracy_vs_completions.png (IQM and 95 % band over seeds) and cost.png (seconds per
    iteration and peak memory per estimator); each replaces only a figure ppoqa drew."""
    from matplotlib.figure import Figure

    from ppo_cli.plotting import label_panel, save_figure

    check_figures_writable(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ests = report["estimators"]
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    for i, (name, e) in enumerate(ests.items()):
        x = e["curve"]["completions"]  # after each iteration's update and greedy evaluation
        c = f"C{i % 10}"
        ax.plot(x, [100 * v for v in e["curve"]["iqm"]], color=c, lw=2, marker=".", label=name)
        lo = [100 * v for v in e["curve"]["lo"]]
        hi = [100 * v for v in e["curve"]["hi"]]
        ax.fill_between(x, lo, hi, color=c, alpha=0.15)
    title = f"{report['dataset']}: {report['seeds']} seeds per estimator"
    label_panel(ax, title, "completions sampled", "greedy accuracy, % (IQM over seeds, 95 % band)")
    ax.set_ylim(-3, 103)
    ax.legend(loc="lower right")
    paths = [save_figure(fig, out_dir / FIGURES[0])]

    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax_t, ax_m = fig.subplots(1, 2)
    names = list(ests)
    colors = [f"C{i % 10}" for i in range(len(names))]
    secs = [1000 * ests[n]["wall"]["seconds_per_iteration"] for n in names]
    mem = [ests[n]["wall"]["peak_rss_mb"] for n in names]
    ax_t.barh(names, secs, color=colors)
    ax_t.set_xlabel("ms per iteration (mean over seeds)")
    ax_m.barh(names, mem, color=colors)
    ax_m.set_xlabel("peak RSS of the process, MB")
    for a in (ax_t, ax_m):
        a.grid(True, axis="x", alpha=0.3)
    fig.suptitle("What each estimator costs (this machine)")
    paths.append(save_figure(fig, out_dir / FIGURES[1]))
    return paths
