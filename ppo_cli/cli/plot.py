"""`ppoqa plot`: a run's training figure, runs aggregated over seeds (--runs / --study), or the
clipping figure; prints the image path."""

from __future__ import annotations

from pathlib import Path

import typer

from ppo_cli.cli.common import handle_errors, print_json
from ppo_cli.cli.options import RunDir, option


def plot_command(
    run: RunDir = None,
    out: option(
        Path | None,
        "Image file (.png, .svg, .pdf); default <run>/training.png or ./ppo_clipping.png.",
    ) = None,
    clip: option(bool, "Draw the PPO clipping figure instead (needs no run).", "--clip") = False,
    clip_coef: option(float, "With --clip: ε of the band.") = 0.2,
    window: option(
        int | None,
        "Gymnasium runs: smoothing window, in logged returns (default: a tenth of them, "
        "at most 10; a sweep's curves: 10).",
    ) = None,
    runs: option(
        list[Path] | None,
        "Aggregate over seeds: run directories or sweep folders (repeatable); runs with "
        "the same settings but the seed are one configuration.",
    ) = None,
    study: option(str | None, "Aggregate a `ppoqa sweep` study's configurations.") = None,
    storage: option(
        str | None, "With --study: its storage (default ./sweeps/<study>/study.db)."
    ) = None,
    json_output: option(
        bool, 'Print {"paths": [...]} on stdout instead of the path.', "--json"
    ) = False,
) -> None:
    """Draw a run's training curves (loss, reward, accuracy, KL) or the clipping figure.

    Example: ppoqa plot   |   ppoqa plot --run runs/<dir> --out curves.png   |   ppoqa plot --clip
    |   ppoqa plot --runs sweeps/clip_coef   |   ppoqa plot --study clip_coef
    """
    with handle_errors(json_output):
        from ppo_cli.core.rundir import find_run
        from ppo_cli.errors import UsageError
        from ppo_cli.plotting import plot_clip, plot_run

        picked = [name for name, v in (("--run", run), ("--runs", runs), ("--study", study),
                                        ("--clip", clip)) if v]  # fmt: skip
        if clip and run is not None:
            raise UsageError("--clip needs no run", "drop --run, or drop --clip")
        if len(picked) > 1:
            raise UsageError(f"{' and '.join(picked)} cannot be combined", "pick one of them")
        if storage is not None and study is None:
            raise UsageError("--storage goes with --study", "add --study NAME")
        if runs or study:
            from ppo_cli.sweep.figures import groups_from_runs, groups_from_study, plot_groups

            if study:
                from ppo_cli.sweep.storage import default_storage_url

                url = storage or default_storage_url(Path("sweeps") / study)
                groups, title = groups_from_study(url, study), f"Study {study}"
            else:
                groups, title = groups_from_runs(runs), "Runs aggregated over seeds"
            path = plot_groups(groups, title, out, 10 if window is None else window)
        elif clip:
            path = plot_clip(out or Path("ppo_clipping.png"), clip_coef)
        else:
            path = plot_run(find_run(run), out, window)
        if json_output:
            print_json({"paths": [str(path)]})
        else:
            typer.echo(str(path))
