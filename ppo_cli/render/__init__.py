"""Every Rich builder: tables from plain records (pure functions, no I/O, easy to test) here;
the teaching views in render.teach, the training progress in render.progress."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.errors import MarkupError
from rich.table import Table
from rich.text import Text

from ppo_cli.kinds import kind_of


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


def qa_results_table(
    results: Sequence[Any], title: str = "Greedy evaluation", misses: int | None = None
) -> Table:
    """Question, target, generated answer, reward, correct: one row per question; with
    `misses`, only the first `misses` wrong answers (a 40-question set every 20 iterations
    would otherwise print its whole table each time), the caption counting the rest."""
    columns = "question | target | generated | reward | correct"
    table = columns_table(title, columns, left="question | target | generated", center="correct")
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


def columns_table(
    title: str, columns: str, compact: bool = False, left: str = "", center: str = "", **kw: Any
) -> Table:
    """A table with its columns named in `columns`, separated by " | ": right-justified, but
    for those named in `left` or `center`; compact: a simple head and no padding at the
    edges, to fit many numbers in 100 columns."""
    if compact:
        kw |= {"box": box.SIMPLE_HEAD, "pad_edge": False, "collapse_padding": True}
    table = Table(title=title, title_justify="left", **kw)
    justify = {name: "left" for name in left.split(" | ")} | {center: "center"}
    for name in columns.split(" | "):
        table.add_column(name, justify=justify.get(name, "right"), no_wrap=compact)
    return table


def number(x: float) -> str:
    """A return as a person reads it: 3 significant digits below 100 (0.97, not "1.0"; -0.0123),
    one decimal above (487.3)."""
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.3g}"


def training_math_table(summary: dict[str, Any]) -> Table:
    """The walkthrough's "training math", for the run that really happened."""
    table = columns_table(
        "Training math (this run)", "what | value", left="what", show_header=False
    )
    rows = [
        ("iterations", f"{summary['iterations']:,}"),
        ("episodes", f"{summary['episodes']:,}"),
        (kind_of(str(summary.get("env"))).steps, f"{summary['steps']:,}"),
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
    from ppo_cli.gym.evaluate import mean_std

    table = columns_table(title, "episode | return | length")
    for r in results:
        table.add_row(str(r.episode), number(r.episode_return), str(r.length))
    mean, std = mean_std([r.episode_return for r in results])
    table.caption = f"mean return {number(mean)} ± {number(std)} over {len(results)} episodes"
    return table


_NUMBER = re.compile(r"^[\s\d.,:+\-−—→%eE()\[\]x×/|<>=]*$")


def _plain(cell: Any) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        try:
            return Text.from_markup(cell).plain
        except MarkupError:
            return cell
    return ""


def _kept_whole(column: Any) -> bool:
    """Numbers (and no_wrap columns) must be drawn whole; a column of words may wrap."""
    return bool(column.no_wrap) or all(_NUMBER.match(_plain(c)) for c in column.cells)


def _sub_table(table: Table, columns: list[int], first: bool, last: bool) -> Table:
    """A copy of the table with only these columns (and the title / caption it should keep)."""
    sub = Table(
        title=table.title if first else None,
        caption=table.caption if last else None,
        title_justify=table.title_justify,
        caption_justify=table.caption_justify,
        box=table.box,
        show_header=table.show_header,
        show_edge=table.show_edge,
        pad_edge=table.pad_edge,
        collapse_padding=table.collapse_padding,
        header_style=table.header_style,
        padding=table.padding,
    )
    cells = [list(table.columns[i].cells) for i in columns]
    for i in columns:
        col = table.columns[i]
        sub.add_column(
            col.header, justify=col.justify, style=col.style, no_wrap=col.no_wrap,
            header_style=col.header_style,
        )  # fmt: skip
    for r, row in enumerate(table.rows):
        sub.add_row(*(c[r] for c in cells), style=row.style, end_section=row.end_section)
    return sub


def _fits(table: Table, width: int) -> bool:
    """Drawn at this width, every number and every header word of the table is whole."""
    probe = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    probe.print(table)
    drawn = probe.file.getvalue()  # type: ignore[attr-defined]
    if "…" in drawn and "…" not in "".join(
        _plain(c) for col in table.columns for c in [col.header, *col.cells]
    ):
        return False
    for col in table.columns:
        words = _plain(col.header).split()
        cells = [_plain(c) for c in col.cells] if _kept_whole(col) else []
        if not all(w in drawn for w in words) or not all(c in drawn for c in cells):
            return False
    return True


# Leading columns that name a row (repeated in every part of a split table) beyond the first
KEY_HEADERS = ("#", "t", "step", "sample", "ep/mb", "episode")


def split_to_fit(table: Table, width: int) -> list[Table]:
    """The table, or when drawing it whole at this width would cut a number, its columns
    split over several tables stacked one below the other, each repeating the leading
    columns that name a row (#, t, sample: KEY_HEADERS)."""
    if len(table.columns) < 3 or _fits(table, width):
        return [table]
    keys = _key_columns(table)
    rest = list(range(keys, len(table.columns)))
    chunks: list[list[int]] = []
    while rest:
        chunk = [*range(keys), rest.pop(0)]
        while rest and _fits(_sub_table(table, [*chunk, rest[0]], False, False), width):
            chunk.append(rest.pop(0))
        chunks.append(chunk)
    return [_sub_table(table, c, i == 0, i == len(chunks) - 1) for i, c in enumerate(chunks)]


def _key_columns(table: Table) -> int:
    """How many leading columns name a row (repeated in every part of a split table)."""
    keys = 1
    while keys < len(table.columns) - 1 and _plain(table.columns[keys].header) in KEY_HEADERS:
        keys += 1
    return keys


def _natural_width(table: Table) -> int:
    probe = Console(width=100_000, file=io.StringIO(), color_system=None, legacy_windows=False)
    return probe.measure(table).maximum


class Fit:
    """A table that fits whatever width it is drawn at (see split_to_fit): the teaching views
    and traces at 80 columns show every number whole."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def whole_width(self) -> int:
        """The narrowest width at which the split shows every cell whole: its widest part of
        one column with the row-naming columns (the stdout console draws a view on a pipe at
        least this wide; on a terminal the terminal decides)."""
        table = self.table
        if len(table.columns) < 3:
            return _natural_width(table)
        keys = _key_columns(table)
        return max(
            _natural_width(_sub_table(table, [*range(keys), c], True, True))
            for c in range(keys, len(table.columns))
        )

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        parts = split_to_fit(self.table, options.max_width)
        caption = parts[-1].caption if len(parts) > 1 else None
        if caption:  # below the parts at full width, not in the last one
            parts[-1].caption = None
        yield from parts
        if caption:
            yield Text(caption) if isinstance(caption, str) else caption
