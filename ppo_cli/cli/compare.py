"""`ppoqa compare`: advantage estimators side by side (ppo_cli.sweep.compare): a report on
stdout (or one JSON document), figures in --out."""

from __future__ import annotations

from pathlib import Path

from ppo_cli.cli.common import emit, err, handle_errors
from ppo_cli.cli.options import JsonFlag, option


def compare_command(
    estimators: option(
        str, "Comma-separated: gae, grpo, dr_grpo, rloo, reinforce_pp."
    ) = "gae,grpo,rloo,reinforce_pp",
    seeds: option(int, "Seeds 0..N-1 per estimator.") = 5,
    dataset: option(str | None, "QA dataset YAML (default: the built-in five questions).") = None,
    iterations: option(int, "Iterations per run, the same for all (no early stop).") = 8,
    num_episodes: option(int, "Completions per iteration (a multiple of every group size).") = 64,
    out_dir: option(Path | None, "Folder for the figures (default: ./compare).", "--out") = None,
    no_figures: option(bool, "Write no figures.", "--no-figures") = False,
    json_output: JsonFlag = False,
) -> None:
    """Compare advantage estimators: same dataset, same completions, N seeds each.

    Example: ppoqa compare   |   ppoqa compare --dataset examples/capitals30.yaml --iterations 40
    """
    with handle_errors(json_output):
        from ppo_cli.render.teach import compare_view
        from ppo_cli.sweep.compare import (
            CompareSpec,
            check_figures_writable,
            compare,
            compare_figures,
        )

        names = tuple(x.strip() for x in estimators.split(",") if x.strip())
        spec = CompareSpec(names, seeds, dataset, iterations, num_episodes)
        if dataset is not None:
            from ppo_cli.textqa.data import load_dataset

            load_dataset(dataset)  # a bad file stops here, before any process starts

        out_dir = out_dir or Path("compare")
        if not no_figures:  # refused before any training, not after it
            check_figures_writable(out_dir)

        def progress(line: str) -> None:
            err.print(f"ppoqa compare: {line}", markup=False, highlight=False)

        report = compare(spec, None if json_output else progress)
        if not no_figures:
            paths = compare_figures(report, out_dir)
            report["figures"] = [str(p) for p in paths]
        emit(report, json_output, compare_view)
