"""`ppoqa sweep`: train's options + a search -> an Optuna study several workers share -> report.

A new training flag is a sweep flag too (ppo_cli.cli.options), minus --seed (a sweep runs
--seeds K); train's own --run-dir, --resume, --trace and --show-every it has not (it has --out
and resumes by itself).
"""

from __future__ import annotations

import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

import typer

from ppo_cli.cli.common import emit, err, handle_errors
from ppo_cli.cli.options import TRAINING, bounded, given_settings, one_of, option, shares
from ppo_cli.errors import PpoqaError, UsageError
from ppo_cli.kinds import KINDS, TEXT, kind_of


class CliEvents:
    """A worker's progress as one line per seed on stderr."""

    def __init__(self, tag: str, quiet: bool) -> None:
        self.tag = tag
        self.quiet = quiet
        self.labels: dict[int, str] = {}

    def on_message(self, text: str) -> None:
        if not self.quiet:
            err.print(f"{self.tag}{text}", markup=False, highlight=False)

    def on_trial_start(self, number: int, params: dict[str, Any]) -> None:
        from ppo_cli.sweep.search import params_label

        self.labels[number] = params_label(params)
        self.on_message(f"trial {number} {self.labels[number]}: start")

    def on_seed(self, number: int, seed: int, score: float, run_dir: Path, reused: bool) -> None:
        how = "kept" if reused else "trained"
        self.on_message(f"trial {number} seed {seed}: {score:.4g} ({how}, {run_dir})")

    def on_trial_end(self, number: int, state: str, value: float | None) -> None:
        tail = f" IQM {value:.4g}" if value is not None else ""
        self.on_message(f"trial {number} {self.labels.get(number, '')}: {state}{tail}")


def _worker_process(opts: Any, tag: str, quiet: bool) -> None:
    """Body of one --workers process: its own errors as one line, its own exit code."""
    from ppo_cli.cli.common import debug
    from ppo_cli.sweep.worker import run_worker

    try:
        interrupted = run_worker(opts, CliEvents(tag, quiet))
    except PpoqaError as exc:
        if debug():
            raise
        hint = f" (hint: {exc.hint})" if exc.hint else ""
        sys.stderr.write(f"ppoqa: {exc.label}: {tag}{exc.message}{hint}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(130 if interrupted else 0)


def _run_workers(opts: Any, n: int, quiet: bool) -> int:
    """n worker processes on this machine; the highest exit code wins (130 after Ctrl-C)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch state
    procs = [
        ctx.Process(target=_worker_process, args=(opts, f"[w{i}] ", quiet), daemon=False)
        for i in range(n)
    ]
    for p in procs:
        p.start()
    for p in procs:
        while p.exitcode is None:  # the workers got the Ctrl-C too: wait for their saves
            with suppress(KeyboardInterrupt):
                p.join()
    return max(p.exitcode if p.exitcode >= 0 else 1 for p in procs)


def report_table(rep: Any) -> Any:
    from ppo_cli.render import columns_table

    names = list(dict.fromkeys(k for c in rep.configurations for k in c.params))
    better = " (lower is better)" if rep.lower_is_better else ""
    title = f"Study {rep.study}: {rep.metric}{better}, IQM over {rep.seeds} seeds, best first"
    columns = " | ".join(["#", *names, "scores per seed", "IQM", "95% CI", "state"])
    table = columns_table(title, columns, left="scores per seed | state")
    for i, c in enumerate(rep.configurations, 1):
        cells = [str(c.params.get(n, "")) for n in names]
        scores = ", ".join(f"{s:.3g}" for s in c.scores) or "-"
        value = f"{c.iqm:.3f}" if c.iqm is not None else "-"
        ci = f"[{c.ci[0]:.3f}, {c.ci[1]:.3f}]" if c.ci is not None else "-"
        table.add_row(str(i), *cells, scores, value, ci, c.state)
    table.caption = (
        "CI: 95 % percentile bootstrap of the IQM over seeds (rliable); "
        "stale = running, but its worker stopped sending heartbeats"
        if rep.configurations
        else "no configurations yet"
    )
    return table


def _own(kind: Any, help: str, *flags: str, **more: Any) -> Any:
    """An option of the sweep's own, in a --help panel of its own."""
    return option(kind, help, *flags, rich_help_panel="Sweep", **more)


@shares(*(p for p in TRAINING if p.name != "seed"), first=False)
def sweep_command(
    search: _own(
        list[str] | None,
        "A setting to search, repeatable: NAME=V1,V2,... (a grid axis) or NAME=log(LO,HI) / "
        "int(LO,HI) / float(LO,HI) (a range, sampled by Optuna's TPE). All lists: every "
        "combination once; any range: --trials configurations.",
    ) = None,
    trials: _own(
        int | None,
        "Range searches: how many configurations to train in all.",
        callback=bounded(1, hint="e.g. --trials 20"),
    ) = None,
    seeds: _own(
        int | None,
        "Seeds 0..K-1 per configuration (default 3); score = their IQM.",
        callback=bounded(1, 1000, "e.g. --seeds 5"),
    ) = None,
    objective: _own(
        str | None,
        "What a seed scores: auc (text QA's default: greedy accuracy averaged over the run's "
        "iterations, so solving sooner ranks higher), final (gymnasium's default: final "
        "accuracy or mean eval return) or iterations-to-solve (text QA; lower is better).",
        **one_of(tuple(KINDS[TEXT].objectives), "e.g. --objective auc"),  # every objective
    ) = None,
    out_dir: _own(
        Path | None, "Folder of the run directories (default ./sweeps/<study>/).", "--out"
    ) = None,
    storage: _own(
        str | None,
        "Optuna storage shared by the workers: sqlite:///FILE.db (default: <out>/study.db), "
        "postgresql://USER:PASSWORD@HOST/DB, or journal:FILE on a shared disk.",
    ) = None,
    study: _own(
        str | None,
        "Study name (default: the searched settings). Workers given the same storage and "
        "study share its configurations; with no --search a worker joins with the study's "
        "own.",
    ) = None,
    workers: _own(
        int, "Trial processes to run on this machine.", callback=bounded(1, 64, "e.g. --workers 2")
    ) = 1,
    pruner: _own(
        str | None,
        "Range searches: median (default; stop a configuration's remaining seeds when its "
        "first seeds fall below the median) or none.",
        **one_of(("median", "none"), "--pruner none"),
    ) = None,
    heartbeat: _own(
        int,
        "Seconds between a running trial's heartbeats; silent for 3 of them = stale.",
        callback=bounded(1, hint="e.g. --heartbeat 20"),
    ) = 20,
    report: _own(
        bool, "Print the study's table (needs --study; trains nothing).", "--report"
    ) = False,
    quiet: _own(bool, "No per-seed lines on stderr.", "--quiet", "-q") = False,
    json_output: _own(
        bool, 'Print {"configurations": [...]} on stdout, nothing else.', "--json"
    ) = False,
    **settings: Any,
) -> None:
    """Train every configuration of a search over seeds, shared through an Optuna study.

    Example: ppoqa sweep --search clip_coef=0.1,0.3 --seeds 5 --env CartPole-v1
    |  ppoqa sweep --report --study clip_coef
    """
    with handle_errors(json_output):
        search = search or []
        config_file, preset = settings["config"], settings["preset"]
        given = given_settings(settings)
        training_options = bool(given or config_file or preset)
        search_options = any(x is not None for x in (trials, seeds, objective))
        if report:
            if search or training_options or search_options:
                raise UsageError(
                    "--report takes only --storage, --study, --out and --json",
                    "drop the training options",
                )
            if study is None:
                raise UsageError("--report needs --study NAME", "e.g. --report --study clip_coef")
            _print_report(storage, study, out_dir, json_output)
            return

        from ppo_cli.config import TEXT_QA, resolve
        from ppo_cli.sweep.search import is_grid, parse_search
        from ppo_cli.sweep.storage import default_storage_url, import_optuna
        from ppo_cli.sweep.worker import SweepSpec, WorkerOptions, check_spec, run_worker

        spec = None
        if search:
            cfg = resolve(given, config_file, preset)
            axes = parse_search(search, cfg)
            grid = is_grid(axes)
            if grid and trials is not None:
                raise UsageError(
                    "--trials is for range searches: a grid trains each combination once",
                    "drop --trials, or give a range such as NAME=log(LO,HI)",
                )
            if not grid and trials is None:
                raise UsageError("a range search needs --trials N", "e.g. --trials 20")
            if grid and pruner == "median":
                raise UsageError(
                    "--pruner median is for range searches: a grid trains every combination",
                    "drop --pruner",
                )
            objectives = kind_of(cfg.env).objectives
            objective = objective or next(iter(objectives))
            if objective not in objectives:
                raise UsageError(
                    f"--objective {objective} is for text QA, not {cfg.env}",
                    "use --objective final or auc",
                )
            spec = SweepSpec(
                objective=objective,
                axes=axes,
                seeds=3 if seeds is None else seeds,
                base={**cfg.to_dict(), "seed": 0},
                trials=trials,
                pruner="none" if grid else (pruner or "median"),
            )
            check_spec(spec)
            names = "-".join(a.name for a in axes)
            study = study or (names if cfg.env == TEXT_QA else f"{cfg.env}-{names}")
        elif study is None:
            raise UsageError(
                "ppoqa sweep needs --search NAME=V1,V2,... (or --study NAME to join a study)",
                "e.g. ppoqa sweep --search clip_coef=0.1,0.3 --seeds 3",
            )
        elif training_options or search_options or pruner:
            raise UsageError(
                "joining a study without --search takes its settings from the study",
                "drop the training options, or repeat the first worker's --search and options",
            )
        import_optuna()  # a missing extra: one line now, not one per worker
        out_dir = out_dir or Path("sweeps") / study
        from ppo_cli.core.rundir import claim_dir

        # the same rule as a run directory: never write over a folder ppoqa did not make
        claim_dir(out_dir, "sweep folder", "--out", early=("study.db",), create=False)
        url = storage or default_storage_url(out_dir.resolve())
        opts = WorkerOptions(url, study, out_dir.resolve(), spec, heartbeat)
        silent = quiet or json_output
        if workers == 1:
            code = 130 if run_worker(opts, CliEvents("", silent)) else 0
        else:
            code = _run_workers(opts, workers, silent)
        if code == 130:
            err.print(
                "ppoqa: interrupted: the running configurations were queued again; "
                "run the same command to continue",
                markup=False,
                highlight=False,
            )
        if code:
            raise typer.Exit(code)
        _print_report(url, study, out_dir, json_output)


def _print_report(storage: str | None, study: str, out_dir: Path | None, as_json: bool) -> None:
    from ppo_cli.sweep.report import study_report
    from ppo_cli.sweep.storage import default_storage_url

    url = storage or default_storage_url(out_dir or Path("sweeps") / study)
    rep = study_report(url, study)
    emit(rep.to_dict() if as_json else rep, as_json, report_table)
