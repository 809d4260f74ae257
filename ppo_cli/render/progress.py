"""The training progress on stderr: a bar with live reward/accuracy, greedy tables, traces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ppo_cli.config import Config
from ppo_cli.core.trace import TraceSelection
from ppo_cli.core.trainer import Callbacks
from ppo_cli.render import number, qa_results_table
from ppo_cli.render.teach import trace_view
from ppo_cli.textqa.budget import Plan

FULL_TABLE_MAX = 10  # questions up to which a periodic evaluation shows every row
MISSES_SHOWN = 10  # wrong answers a periodic evaluation of a larger set shows


class RichCallbacks(Callbacks):
    """Progress bar on stderr with live reward/accuracy; greedy tables every `show_every`."""

    def __init__(
        self,
        err: Console,
        show_every: int,
        quiet: bool,
        trace: TraceSelection | None = None,
        keep_traces: bool = False,
        reader_gone: Any = None,
        plan: bool = False,
    ) -> None:
        self.err = err  # the stderr console
        self.show_every = show_every
        self.quiet = quiet
        self.progress: Progress | None = None
        self.last_acc: float | None = None
        self.last_return: float | None = None
        self.trace = trace
        self.keep_traces = keep_traces  # --json: traces go into the summary, not on stderr
        self.traces: list[dict[str, Any]] = []
        self.reader_gone = reader_gone  # a threading.Event: the progress bar's reader left
        self.plan: Plan | None = None  # the run's expected cost, when it was measured
        self.plan_wanted = plan  # measure the run's cost: to say it, or for --json's summary

    def wants_trace(self, iteration: int, total: int) -> bool:
        return self.trace is not None and self.trace.wants(iteration, total)

    def on_trace(self, record: dict[str, Any]) -> None:
        if self.keep_traces:
            self.traces.append(record)
            return
        console = self.progress.console if self.progress is not None else self.err
        console.print(trace_view(record))

    def on_progress(self, message: str) -> None:
        if not self.quiet:
            self.err.print(f"ppoqa: {message}", markup=False, highlight=False)

    def wants_plan(self) -> bool:
        return self.plan_wanted

    def on_plan(self, plan: Plan) -> None:
        self.plan = plan
        if self.quiet:
            return
        self.err.print(f"ppoqa: {plan.line()}", markup=False, highlight=False)
        if plan.too_long:
            self.on_warning(plan.remedy())

    def on_start(self, cfg: Config, run_dir: Path, total: int) -> None:
        beyond = sorted(n for n in self.trace.numbers if n > total) if self.trace else []
        if beyond:
            shown = ", ".join(map(str, beyond))
            self.on_warning(
                f"--trace-iterations {shown}: the run has only {total} iterations; "
                "nothing is traced there"
            )
        if self.quiet:
            return
        # an entry's env_kwargs change what the agent sees (Ant-v5's): the header says so
        kwargs = "".join(f" {k}={v}" for k, v in (cfg.env_kwargs or {}).items())
        self.err.print(
            f"[bold]ppoqa train[/] env={cfg.env}{escape(kwargs)} seed={cfg.seed} -> {run_dir}"
        )
        self.progress = Progress(
            TextColumn("[bold blue]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=self.err,
            transient=False,
        )
        self.task = self.progress.add_task("train", total=total, stats="")
        self.progress.start()

    def on_iteration(self, record: dict[str, Any]) -> None:
        if self.reader_gone is not None and self.reader_gone.is_set():
            raise BrokenPipeError  # the iteration is saved; the command exits 0 quietly
        if self.progress is None:
            return
        if "eval_accuracy" in record:
            self.last_acc = record["eval_accuracy"]
        if "mean_reward" in record:
            stats = f"reward {record['mean_reward']:+.2f}"
            if self.last_acc is not None:
                stats += f"  acc {100 * self.last_acc:.0f}%"
            if self.plan is not None and "wall_seconds" in record:
                eta = self.plan.eta(record["iteration"], record["wall_seconds"])
                stats += f"  {eta}" if eta else ""
        else:  # gymnasium: iterations with no finished episode keep the last return shown
            self.last_return = record.get("episodic_return", self.last_return)
            ret = "-" if self.last_return is None else number(self.last_return)
            stats = f"return {ret}  SPS {record.get('sps', 0):,.0f}"
        self.progress.update(
            self.task, completed=record.get("progress", record["iteration"]), stats=stats
        )

    def on_eval(self, iteration: int, results: list[Any]) -> None:
        if self.progress is not None and self.show_every and iteration % self.show_every == 0:
            # A small set shows every question; a larger one its accuracy and the misses.
            misses = None if len(results) <= FULL_TABLE_MAX else MISSES_SHOWN
            self.progress.console.print(
                qa_results_table(results, f"Greedy evaluation, iteration {iteration}", misses)
            )

    def on_warning(self, message: str) -> None:
        console = self.progress.console if self.progress is not None else self.err
        console.print(f"ppoqa: warning: {message}", markup=False, highlight=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
