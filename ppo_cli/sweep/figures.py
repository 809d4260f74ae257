"""`ppoqa plot --runs DIR... / --study NAME`: learning curves aggregated over seeds, one line per
configuration with a 95 % bootstrap band around its IQM, and an IQM bar chart with CIs.

Runs are grouped into configurations by their config.yaml without the seed, so plain
`ppoqa train --seed K` runs group the same way as a sweep's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ppo_cli.core.rundir import CONFIG, METRICS, read_config, read_metrics, run_env
from ppo_cli.errors import RunError
from ppo_cli.kinds import kind_of
from ppo_cli.sweep.stats import bootstrap_ci, iqm, iqm_band

# Settings that say how a run was made, not what it learned: they never split a configuration.
_NOT_CONFIG = ("seed", "save_every", "tensorboard", "threads", "device", "vector_mode")
CURVE_POINTS = 100


@dataclass
class Group:
    label: str
    runs: list[Path]
    scores: list[float] = field(default_factory=list)
    metric: str | None = None  # what the scores are (a study's metric); None: final score


def find_runs(paths: list[Path]) -> list[Path]:
    """Each path is a run directory or a folder holding some (a sweep's --out)."""
    found: list[Path] = []
    for p in paths:
        if not p.is_dir():
            raise RunError(f"--runs {p}: not a directory", "pass run directories or a sweep folder")
        if (p / CONFIG).is_file() and (p / METRICS).is_file():
            found.append(p)
            continue
        inside = sorted(
            Path(root) for root, _dirs, files in os.walk(p) if CONFIG in files and METRICS in files
        )
        if not inside:
            raise RunError(f"--runs {p}: no run directories in it", "train or sweep first")
        found += inside
    return list(dict.fromkeys(found))


def _final_score(run: Path) -> float | None:
    """The sweep's score when the run has one; else its last greedy accuracy (text QA) or the
    mean of its last 10 episode returns (gymnasium)."""
    from ppo_cli.sweep.worker import read_score

    kind, records = kind_of(run_env(run)), read_metrics(run)
    score = read_score(run)
    if score is not None:
        return score
    values = [r[kind.curve] for r in records if r.get(kind.curve) is not None]
    if not values:
        return None
    return float(np.mean(values[-10:])) if kind.noisy else float(values[-1])


def group_runs(runs: list[Path]) -> list[Group]:
    """Configurations from plain run directories, labelled by the settings that differ."""
    configs = {
        run: {k: v for k, v in read_config(run).items() if k not in _NOT_CONFIG} for run in runs
    }
    keys = sorted({k for c in configs.values() for k in c})
    varying = [k for k in keys if len({json.dumps(c.get(k)) for c in configs.values()}) > 1]
    groups: dict[str, Group] = {}
    for run, cfg in configs.items():
        label = " ".join(f"{k}={cfg.get(k)}" for k in varying) or "all runs"
        groups.setdefault(json.dumps(cfg, sort_keys=True), Group(label, [])).runs.append(run)
    return list(groups.values())


def _curve(run: Path, env: str, window: int) -> tuple[np.ndarray, np.ndarray]:
    from ppo_cli.plotting import series, trailing_mean

    kind = kind_of(env)
    xs, ys = series(read_metrics(run), kind.curve, kind.x)
    if kind.noisy:
        ys = trailing_mean(ys, window)
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def sweep_figure(groups: list[Group], title: str, window: int = 10) -> Any:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    env = run_env(groups[0].runs[0])
    text = not kind_of(env).noisy  # accuracy, in %
    fig = Figure(figsize=(14, 5.5), layout="constrained")
    ax_curve, ax_bar = fig.subplots(1, 2, width_ratios=[3, 2])
    colors = [f"C{i % 10}" for i in range(len(groups))]
    for g, color in zip(groups, colors, strict=True):
        curves = [c for c in (_curve(r, env, window) for r in g.runs) if c[0].size]
        if not curves:
            continue
        # Text QA: early-stopped runs keep their last accuracy to the longest run's end;
        # gymnasium: returns only where every seed has data.
        ends = [c[0][-1] for c in curves]
        end = max(ends) if text else min(ends)
        start = min(c[0][0] for c in curves)
        grid = np.linspace(start, end, CURVE_POINTS)
        ys = np.stack([np.interp(grid, x, y) for x, y in curves])  # [seeds, points]
        center, lo, hi = iqm_band(ys)
        scale = 100.0 if text else 1.0
        ax_curve.plot(
            grid, scale * center, color=color, linewidth=2, label=f"{g.label} (n={len(curves)})"
        )
        ax_curve.fill_between(grid, scale * lo, scale * hi, color=color, alpha=0.2)
    from ppo_cli.plotting import label_panel, solved_threshold

    label_panel(
        ax_curve,
        "Learning curves: IQM over seeds, 95 % bootstrap band",
        "iteration" if text else "environment steps",
        "greedy accuracy, %" if text else f"episode return (mean of last {window})",
    )
    threshold = None if text else solved_threshold(env)
    if text:
        ax_curve.set_ylim(-3, 103)
    elif threshold is not None:
        ax_curve.axhline(threshold, color="gray", linestyle="--", linewidth=1)
    ax_curve.legend(fontsize=8, loc="lower right")

    metric = groups[0].metric if groups else None
    steps = metric == "iterations_to_solve"  # lower is better
    unit = 100.0 if text and not steps else 1.0  # accuracy in %, like the curves
    scored = [(g, c) for g, c in zip(groups, colors, strict=True) if g.scores]
    # the best on top (barh draws index 0 at the bottom)
    scored.sort(key=lambda gc: iqm(gc[0].scores), reverse=steps)
    for i, (g, color) in enumerate(scored):
        center = unit * iqm(g.scores)
        lo, hi = (unit * v for v in bootstrap_ci(g.scores))
        ax_bar.barh(i, center, color=color, alpha=0.7)
        ax_bar.errorbar(center, i, xerr=[[center - lo], [hi - center]], color="black", capsize=4)
        dots = [unit * s for s in g.scores]
        ax_bar.plot(dots, [i] * len(dots), "o", color="black", markersize=3, alpha=0.6)
    ax_bar.set_yticks(range(len(scored)), [g.label for g, _ in scored], fontsize=8)
    labels = {
        "greedy_accuracy_auc": "greedy accuracy averaged over the run's iterations (AUC), %",
        "episodic_return_auc": "episode return averaged over training (AUC)",
        "iterations_to_solve": "iterations to reach the target (lower is better)",
    }
    default = "final greedy accuracy, %" if text else "final score (mean eval return)"
    ax_bar.set_xlabel(labels.get(metric or "", default))
    ax_bar.set_title("Score: IQM, 95 % CI, dots = seeds")
    ax_bar.grid(True, axis="x", alpha=0.3)
    if text:  # iterations are whole numbers: no 1.2, 1.4, ... ticks
        ax_curve.xaxis.set_major_locator(MaxNLocator(integer=True))
    if steps:
        ax_bar.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title, fontsize=13, fontweight="bold")
    return fig


def groups_from_runs(paths: list[Path]) -> list[Group]:
    groups = group_runs(find_runs(paths))
    for g in groups:
        g.scores = [s for s in map(_final_score, g.runs) if s is not None]
    return groups


def groups_from_study(storage_url: str, study: str) -> list[Group]:
    from ppo_cli.sweep.report import study_report
    from ppo_cli.sweep.search import params_label

    rep = study_report(storage_url, study)
    groups = [
        Group(params_label(c.params), [Path(r) for r in c.runs], list(c.scores), rep.metric)
        for c in rep.configurations
        if c.runs
    ]
    if not groups:
        raise RunError(
            f"--study {study!r}: no configuration has a finished seed yet",
            "run `ppoqa sweep` first",
        )
    return groups


def plot_groups(groups: list[Group], title: str, out: Path | None, window: int = 10) -> Path:
    from ppo_cli.plotting import check_suffix, save_figure

    if out is not None:
        check_suffix(out)  # before the figure is drawn
    else:  # <the runs' common folder>/sweep.png (a sweep's --out folder)
        parents = [str(r.parent.resolve()) for g in groups for r in g.runs]
        out = Path(os.path.commonpath(parents)) / "sweep.png"
    return save_figure(sweep_figure(groups, title, window), out)
