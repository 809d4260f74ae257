"""`ppoqa plot`: the training figure of a run, or the clipping figure; prints the PNG path."""

from __future__ import annotations

from pathlib import Path

import typer

from ppo_cli.cli.common import handle_errors, print_json


def plot_command(
    run: Path = typer.Option(
        None, "--run", help="Run directory (default: the newest under ./runs/)."
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Image file (.png, .svg, .pdf); default <run>/training.png or ./ppo_clipping.png.",
    ),
    clip: bool = typer.Option(
        False, "--clip", help="Draw the PPO clipping figure instead (needs no run)."
    ),
    clip_coef: float = typer.Option(0.2, "--clip-coef", help="With --clip: ε of the band."),
    window: int = typer.Option(
        10, "--window", help="Gymnasium runs: smoothing window, in logged returns."
    ),
    json_output: bool = typer.Option(
        False, "--json", help='Print {"paths": [...]} on stdout instead of the path.'
    ),
) -> None:
    """Draw a run's training curves (loss, reward, accuracy, KL) or the clipping figure.

    Example: ppoqa plot   |   ppoqa plot --run runs/<dir> --out curves.png   |   ppoqa plot --clip
    """
    with handle_errors(json_output):
        from ppo_cli.errors import UsageError
        from ppo_cli.plotting import plot_clip, plot_run
        from ppo_cli.rundir import find_run

        if clip:
            if run is not None:
                raise UsageError("--clip needs no run", "drop --run, or drop --clip")
            paths = [plot_clip(out or Path("ppo_clipping.png"), clip_coef)]
        else:
            paths = [plot_run(find_run(run), out, window)]
        if json_output:
            print_json({"paths": [str(p) for p in paths]})
            return
        for p in paths:
            typer.echo(str(p))
