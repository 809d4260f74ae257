"""`ppoqa eval`: measure a trained run (accuracy per question, or episode returns)."""

from __future__ import annotations

from pathlib import Path

import typer

from ppo_cli.cli.common import handle_errors, out, print_json
from ppo_cli.errors import UsageError
from ppo_cli.rundir import find_run, read_config


def eval_command(
    run: Path = typer.Option(
        None, "--run", help="Run directory (default: the newest under ./runs/)."
    ),
    dataset: Path = typer.Option(
        None, "--dataset", help="Text QA: evaluate on this dataset instead of the training set."
    ),
    episodes: int = typer.Option(
        20, "--episodes", min=1, help="Gymnasium: greedy episodes to run."
    ),
    seed: int = typer.Option(
        1000, "--seed", help="Gymnasium: seed of the first evaluation episode."
    ),
    record: Path = typer.Option(
        None,
        "--record",
        help="Gymnasium: also write greedy episodes as an animation (.gif; .mp4 with ffmpeg).",
    ),
    record_episodes: int = typer.Option(
        1, "--record-episodes", min=1, help="Gymnasium: episodes --record plays (default 1)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Measure a trained run: greedy accuracy per question, or mean episode return.

    Example: ppoqa eval --json   |   ppoqa eval --run runs/<dir> --dataset examples/capitals.yaml
    """
    with handle_errors(json_output):
        path = find_run(run)
        env = read_config(path).get("env", "text-qa")
        if env != "text-qa":
            from ppo_cli.cli.eval_gym import eval_gym

            if dataset is not None:
                raise UsageError(
                    f"--dataset is for text-QA runs; {path} is a {env} run",
                    "drop --dataset (use --episodes and --seed for gymnasium runs)",
                )
            eval_gym(path, episodes, seed, json_output, record, record_episodes)
            return
        if record is not None:
            raise UsageError(
                f"--record is for gymnasium runs; {path} is a text-QA run", "drop --record"
            )
        from ppo_cli.evaluate import accuracy, evaluate_on_dataset, evaluate_qa, load_text_run
        from ppo_cli.render import qa_results_table

        text_run = load_text_run(path)
        results = (
            evaluate_on_dataset(text_run, dataset)
            if dataset is not None
            else evaluate_qa(text_run.policy, text_run.task)
        )
        acc = accuracy(results)
        if json_output:
            print_json(
                {
                    "run": str(path),
                    "env": "text-qa",
                    "accuracy": acc,
                    "correct": sum(r.correct for r in results),
                    "total": len(results),
                    "results": [r.to_dict() for r in results],
                }
            )
            return
        out.print(qa_results_table(results, f"Greedy evaluation of {path}"))
