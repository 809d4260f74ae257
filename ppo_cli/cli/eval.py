"""`ppoqa eval`: measure a trained run (accuracy per question, or episode returns)."""

from __future__ import annotations

from pathlib import Path

from ppo_cli.cli.common import emit, err, handle_errors
from ppo_cli.cli.options import JsonFlag, RunDir, option
from ppo_cli.errors import UsageError


def eval_command(
    run: RunDir = None,
    dataset: option(
        Path | None, "Text QA: evaluate on this dataset instead of the training set."
    ) = None,
    episodes: option(int, "Gymnasium: greedy episodes to run.", min=1) = 20,
    seed: option(int, "Gymnasium: seed of the first evaluation episode.", min=0) = 1000,
    record: option(
        Path | None,
        "Gymnasium: also write greedy episodes as an animation (.gif; .mp4 with ffmpeg).",
    ) = None,
    record_episodes: option(int, "Gymnasium: episodes --record plays (default 1).", min=1) = 1,
    json_output: JsonFlag = False,
) -> None:
    """Measure a trained run: greedy accuracy per question, or mean episode return.

    Example: ppoqa eval --json   |   ppoqa eval --run runs/<dir> --dataset examples/capitals.yaml
    """
    with handle_errors(json_output):
        from ppo_cli.core.rundir import find_run, run_env

        path = find_run(run)
        env = run_env(path)
        if env != "text-qa":
            if dataset is not None:
                raise UsageError(
                    f"--dataset is for text-QA runs; {path} is a run of {env}",
                    "drop --dataset (use --episodes and --seed for gymnasium runs)",
                )
            _eval_gym(path, episodes, seed, json_output, record, record_episodes)
            return
        if record is not None:
            raise UsageError(
                f"--record is for gymnasium runs; {path} is a text-QA run", "drop --record"
            )
        from ppo_cli.render import qa_results_table
        from ppo_cli.textqa.evaluate import (
            accuracy,
            evaluate_on_dataset,
            evaluate_qa,
            load_text_run,
        )

        text_run = load_text_run(path)
        results = (
            evaluate_on_dataset(text_run, dataset)
            if dataset is not None
            else evaluate_qa(text_run.policy, text_run.task)
        )
        doc = {
            "run": str(path),
            "env": env,
            "accuracy": accuracy(results),
            "correct": sum(r.correct for r in results),
            "total": len(results),
            "results": [r.to_dict() for r in results],
        }
        emit(doc, json_output, lambda _: qa_results_table(results, f"Greedy evaluation of {path}"))


def _eval_gym(
    path: Path,
    episodes: int,
    seed: int,
    json_output: bool,
    record: Path | None = None,
    record_episodes: int = 1,
) -> None:
    """Run `episodes` greedy episodes of the run's policy from `seed` and print the result;
    with `record`, also write `record_episodes` greedy episodes as an animation."""
    from ppo_cli.gym.evaluate import evaluate_gym, load_gym_run, mean_std
    from ppo_cli.render import episodes_table

    run = load_gym_run(path)
    recorded = None
    if record is not None:
        from ppo_cli.gym.record import check_record_path
        from ppo_cli.gym.record import record_episodes as record_fn

        check_record_path(record)
        recorded = record_fn(
            run.policy, run.env_id, record, record_episodes, seed, run.env_kwargs, run.normalizer
        )
        if not json_output:
            err.print(
                f"recorded {recorded['episodes']} episode(s), {recorded['frames']} frames "
                f"-> {record}",
                markup=False,
                highlight=False,
            )
    results = evaluate_gym(run.policy, run.env_id, episodes, seed, run.env_kwargs, run.normalizer)
    returns = [r.episode_return for r in results]
    mean, std = mean_std(returns)
    doc = {
        "run": str(path),
        "env": run.env_id,
        "episodes": len(results),
        "seed": seed,
        "mean_return": mean,
        "std_return": std,
        "returns": returns,
        "lengths": [r.length for r in results],
    } | ({"record": recorded} if recorded is not None else {})
    title = f"Greedy evaluation of {path} on {run.env_id}"
    emit(doc, json_output, lambda _: episodes_table(results, title))
