"""`ppoqa eval` for gymnasium runs: greedy episodes, a table and mean ± std (or one JSON)."""

from __future__ import annotations

import statistics
from pathlib import Path

from rich.table import Table

from ppo_cli.cli.common import err, out, print_json
from ppo_cli.gym_evaluate import EpisodeResult, evaluate_gym, load_gym_run


def episodes_table(results: list[EpisodeResult], title: str) -> Table:
    """One row per greedy episode; the caption carries mean ± std of the return."""
    table = Table(title=title, title_justify="left")
    table.add_column("episode", justify="right")
    table.add_column("return", justify="right")
    table.add_column("length", justify="right")
    for r in results:
        table.add_row(str(r.episode), f"{r.episode_return:.1f}", str(r.length))
    mean, std = _mean_std([r.episode_return for r in results])
    table.caption = f"mean return {mean:.1f} ± {std:.1f} over {len(results)} episodes"
    return table


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Population std (ddof 0), as gymnasium/SB3 evaluation reports it."""
    return statistics.fmean(values), statistics.pstdev(values)


def eval_gym(
    path: Path,
    episodes: int,
    seed: int,
    json_output: bool,
    record: Path | None = None,
    record_episodes: int = 1,
) -> None:
    """Run `episodes` greedy episodes of the run's policy from `seed` and print the result;
    with `record`, also write `record_episodes` greedy episodes as an animation."""
    run = load_gym_run(path)
    recorded = None
    if record is not None:
        from ppo_cli.gym_record import check_record_path
        from ppo_cli.gym_record import record_episodes as record_fn

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
    if json_output:
        returns = [r.episode_return for r in results]
        mean, std = _mean_std(returns)
        print_json(
            {
                "run": str(path),
                "env": run.env_id,
                "episodes": len(results),
                "seed": seed,
                "mean_return": mean,
                "std_return": std,
                "returns": returns,
                "lengths": [r.length for r in results],
            }
            | ({"record": recorded} if recorded is not None else {})
        )
        return
    out.print(episodes_table(results, f"Greedy evaluation of {path} on {run.env_id}"))
