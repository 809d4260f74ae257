"""Every Rich builder: tables from plain records (pure functions, no I/O, easy to test) here;
the teaching views in render.teach, the training progress in render.progress."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


def qa_results_table(
    results: Sequence[Any], title: str = "Greedy evaluation", misses: int | None = None
) -> Table:
    """Question, target, generated answer, reward, correct: one row per question; with
    `misses`, only the first `misses` wrong answers (a 40-question set every 20 iterations
    would otherwise print its whole table each time), the caption counting the rest."""
    table = Table(title=title, title_justify="left")
    table.add_column("question")
    table.add_column("target")
    table.add_column("generated")
    table.add_column("reward", justify="right")
    table.add_column("correct", justify="center")
    rows = list(results) if misses is None else [r for r in results if not r.correct]
    shown = rows if misses is None else rows[:misses]
    for r in shown:
        table.add_row(
            r.question, r.target, r.answer or "[dim](empty)[/]", f"{r.reward:.2f}", _mark(r.correct)
        )
    n = len(results)
    k = sum(r.correct for r in results)
    table.caption = f"accuracy {k}/{n} = {100.0 * k / max(1, n):.1f}%"
    if misses is not None:
        more = f", the first {len(shown)} shown" if len(shown) < len(rows) else ""
        table.caption += f"; {len(rows)} wrong{more}"
    return table


def number(x: float) -> str:
    """A return as a person reads it: 3 significant digits below 100 (0.97, not "1.0"; -0.0123),
    one decimal above (487.3)."""
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.3g}"


def training_math_table(summary: dict[str, Any]) -> Table:
    """The seed's "training math", for the run that really happened."""
    table = Table(title="Training math (this run)", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("iterations", f"{summary['iterations']:,}"),
        ("episodes", f"{summary['episodes']:,}"),
        (
            "steps (tokens)" if summary.get("env") == "text-qa" else "environment steps",
            f"{summary['steps']:,}",
        ),
        ("epochs", f"{summary['epochs']:,}"),
        ("gradient updates", f"{summary['gradient_updates']:,}"),
        ("wall time", f"{summary['wall_seconds']:.2f} s"),
    ]
    if summary.get("final_accuracy") is not None:
        rows.append(("final greedy accuracy", f"{100 * summary['final_accuracy']:.1f}%"))
    if summary.get("mean_return") is not None:
        rows.append(("final eval mean return", number(summary["mean_return"])))
    rows.append(("run directory", str(summary["run_dir"])))
    for what, value in rows:
        table.add_row(what, value)
    return table


def episodes_table(results: Sequence[Any], title: str) -> Table:
    """One row per greedy episode (gym_evaluate.EpisodeResult); the caption carries mean ± std
    of the return."""
    from ppo_cli.gym_evaluate import mean_std

    table = Table(title=title, title_justify="left")
    table.add_column("episode", justify="right")
    table.add_column("return", justify="right")
    table.add_column("length", justify="right")
    for r in results:
        table.add_row(str(r.episode), number(r.episode_return), str(r.length))
    mean, std = mean_std([r.episode_return for r in results])
    table.caption = f"mean return {number(mean)} ± {number(std)} over {len(results)} episodes"
    return table
