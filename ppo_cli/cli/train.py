"""`ppoqa train`: the training options it shares with `sweep` (ppo_cli.cli.options) ->
config.resolve() -> trainer.train() -> progress, tables, run dir; torch loads once a run starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ppo_cli.cli.common import (
    READER_GONE,
    err,
    handle_errors,
    out,
    print_json,
    reader_gone_stops_at_boundary,
)
from ppo_cli.cli.options import OUT, RUN, TRAINING, given_settings, option, shares
from ppo_cli.errors import UsageError


@shares(*TRAINING)
def train_command(
    resume: option(
        Path | None,
        "Continue an interrupted run in this directory with its own config.yaml "
        "(--iterations may grow; settings that change what it learns are refused).",
        rich_help_panel=RUN,
    ) = None,
    run_dir: option(
        Path | None, "Where to write the run (default: new under ./runs/).", rich_help_panel=RUN
    ) = None,
    show_every: option(
        int, "A greedy evaluation table every N iterations (0: never).", min=0, rich_help_panel=OUT
    ) = 20,
    trace: option(
        bool,
        "Show what the update saw: episodes, advantages, clipping, per-epoch losses "
        "(on stderr, also with --quiet; with --json inside the summary).",
        "--trace",
        rich_help_panel=OUT,
    ) = False,
    trace_iterations: option(
        str | None,
        "Which iterations --trace shows: numbers, first, last, all (default "
        "first,last); implies --trace.",
        rich_help_panel=OUT,
    ) = None,
    quiet: option(
        bool, "No progress bar or tables on stderr.", "--quiet", "-q", rich_help_panel=OUT
    ) = False,
    json_output: option(
        bool, "One JSON summary on stdout, nothing else.", "--json", rich_help_panel=OUT
    ) = False,
    **settings: Any,
) -> None:
    """Train a PPO agent and write a run directory.

    Defaults shown are Config's: a gymnasium id starts from its tuned entry
    (ppo_cli/hyperparams/gym.yaml), the transformer from its policy defaults.

    Example: ppoqa train --seed 1   |   ppoqa train --dataset examples/capitals.yaml
    """
    with handle_errors(json_output):
        given = given_settings(settings)
        config, preset = settings["config"], settings["preset"]
        if resume is not None:  # the run's own config; meaning-changing flags are refused
            from ppo_cli.core.rundir import find_run
            from ppo_cli.core.session import resume_config

            if preset is not None:
                raise UsageError(
                    "--preset cannot be combined with --resume", "the run keeps its own settings"
                )
            if config is not None:
                raise UsageError(
                    "--config cannot be combined with --resume: the run keeps its own config.yaml",
                    "drop --config",
                )
            if run_dir is not None and run_dir.resolve() != resume.resolve():
                raise UsageError(
                    "--run-dir cannot be combined with --resume: a run resumes in its own "
                    "directory",
                    "drop --run-dir",
                )
            cfg = resume_config(find_run(resume), given)
            run_dir = resume
        else:
            from ppo_cli.config import resolve

            cfg = resolve(given, config, preset)
        from ppo_cli.core.trace import parse_trace_iterations
        from ppo_cli.core.trainer import train

        # Which defaults a gymnasium id without a tuned entry got (from its action space), said
        # once the run has trained (an error on the way stays the one line on stderr).
        defaults = None
        if not cfg.is_text_qa and resume is None:
            from ppo_cli.gym.envs import action_space_name
            from ppo_cli.presets import defaults_note, has_tuned_entry

            kind = None if has_tuned_entry(cfg.env) else action_space_name(cfg.env, cfg.env_kwargs)
            if kind is not None:  # None: tuned, or the env cannot be created (training says why)
                defaults = defaults_note(cfg.env, kind == "Box")
        from ppo_cli.render import qa_results_table, training_math_table
        from ppo_cli.render.progress import RichCallbacks

        selection = parse_trace_iterations(trace_iterations) if trace or trace_iterations else None
        cb = RichCallbacks(
            err, show_every, quiet or json_output, selection, json_output, READER_GONE,
            plan=not quiet or json_output,
        )  # fmt: skip
        try:
            with reader_gone_stops_at_boundary():
                result = train(cfg, run_dir, cb, resume=resume is not None)
        finally:
            cb.close()
        summary = result.to_dict()
        if cb.plan is not None:
            summary["plan"] = cb.plan.to_dict()
        findings = []
        if cfg.is_text_qa and result.stop_reason is not None:
            from ppo_cli.teach.doctor import diagnose, render_findings

            findings = diagnose(result.run_dir)
            summary["findings"] = [f.to_dict() for f in findings]
        if defaults is not None:
            summary["defaults"] = defaults
        if selection is not None and json_output:
            summary["traces"] = cb.traces
        if json_output:
            print_json(summary)
            return
        if result.final_results:
            out.print(qa_results_table(result.final_results, "Final greedy evaluation"))
        out.print(training_math_table(summary))
        if defaults is not None:
            err.print(f"ppoqa: {defaults}", markup=False, highlight=False)
        if result.stop_message:
            err.print(f"ppoqa: {result.stop_message}", markup=False, highlight=False)
        if findings:
            err.print(f"ppoqa doctor found {len(findings)} problem(s):", highlight=False)
            for line in render_findings(findings):
                err.print(line, markup=False, highlight=False)
        ask = ""
        if cfg.is_text_qa:
            question = result.final_results[0].question if result.final_results else "..."
            ask = f'   |   ppoqa ask "{question}"'
        err.print(f"Next: ppoqa eval --run {result.run_dir}{ask}")
