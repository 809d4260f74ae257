"""`ppoqa explain-gae` and `ppoqa explain-clip`: the seeds' worked numbers, or yours, computed by
the functions training uses."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ppo_cli.cli.common import handle_errors, out, print_json
from ppo_cli.errors import UsageError


def _read_stdin() -> str:
    try:
        return sys.stdin.read()
    except UnicodeDecodeError:
        raise UsageError("stdin is not UTF-8 text", "pipe a JSON document") from None


def explain_gae_command(
    source: str = typer.Argument(
        None, help='\'-\' reads a JSON document from stdin: {"rewards": [...], "values": [...]}.'
    ),
    rewards: str = typer.Option(None, "--rewards", help="Rewards per step, e.g. -0.1,10."),
    values: str = typer.Option(
        None, "--values", help="Critic values V(s_t) per step, e.g. 8.2,9.8."
    ),
    dones: str = typer.Option(
        None, "--dones", help="1 where an episode ended at that step, e.g. 0,1 (default: none)."
    ),
    last_value: float = typer.Option(
        None, "--last-value", help="V after the final step when it is not done (default 0)."
    ),
    gamma: float = typer.Option(None, "--gamma", help="Discount factor in [0, 1] (default 0.99)."),
    lam: float = typer.Option(None, "--lam", help="GAE lambda in [0, 1] (default 0.95)."),
    example: str = typer.Option(
        None,
        "--example",
        help="A seed example when no lists are given: correct (default), wrong, cartpole.",
    ),
    run: Path = typer.Option(
        None, "--run", help="Explain episodes sampled from this trained text-QA run instead."
    ),
    episodes: int = typer.Option(3, "--episodes", help="With --run: episodes to show."),
    seed: int = typer.Option(0, "--seed", help="With --run: seed of the sampled batch."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Walk through GAE step by step: δ, advantages, returns and their normalization.

    Example: ppoqa explain-gae --rewards -0.1,-2.0 --values 8.2,5.1 --dones 0,1
    """
    with handle_errors(json_output):
        from ppo_cli.teach.explain import (
            explain_gae,
            explain_run,
            gae_request,
            gae_request_from_json,
        )

        lists_given = any(x is not None for x in (rewards, values, dones, example))
        if source not in (None, "-"):
            raise UsageError(f"unexpected argument {source!r}", "only '-' (read stdin) is accepted")
        if run is not None:
            if source == "-" or lists_given or last_value is not None:
                raise UsageError(
                    "--run explains a run's own episodes; it takes no lists, --example or stdin",
                    "drop --run, or drop the lists",
                )
            from ppo_cli.core.rundir import find_run

            result = explain_run(find_run(run), episodes, seed, gamma, lam)
            if json_output:
                print_json(result)
                return
            from ppo_cli.render.teach import explain_run_view

            out.print(explain_run_view(result), soft_wrap=False)
            return
        if source == "-":
            if lists_given:
                raise UsageError(
                    "give the lists on stdin or as options, not both", "drop --rewards/--values"
                )
            req = gae_request_from_json(_read_stdin(), last_value, gamma, lam)
        else:
            req = gae_request(rewards, values, dones, last_value, gamma, lam, example)
        result = explain_gae(req)
        if json_output:
            print_json(result)
            return
        from ppo_cli.render.teach import explain_gae_view

        out.print(explain_gae_view(result), soft_wrap=False)  # prose wraps at spaces


def explain_clip_command(
    old_logprobs: str = typer.Option(
        None, "--old-logprobs", help="Log-probabilities under the old policy, e.g. -1.0,-0.5."
    ),
    new_logprobs: str = typer.Option(
        None, "--new-logprobs", help="Log-probabilities under the new policy, e.g. -0.5,-0.3."
    ),
    advantages: str = typer.Option(None, "--advantages", help="Advantages, e.g. 1.0,-0.5."),
    clip_coef: float = typer.Option(0.2, "--clip-coef", help="PPO clipping ε in (0, 1)."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Walk through PPO's clipped objective: ratios, both terms, the min, the loss.

    Example: ppoqa explain-clip --old-logprobs -1,-2 --new-logprobs -0.5,-2.5 --advantages 1,2
    """
    with handle_errors(json_output):
        from ppo_cli.teach.explain import clip_request, explain_clip, seed_clip_examples

        given = [x is not None for x in (old_logprobs, new_logprobs, advantages)]
        if any(given) and not all(given):
            raise UsageError(
                "give --old-logprobs, --new-logprobs and --advantages together",
                "or none of them for the seeds' examples",
            )
        if all(given):
            example = explain_clip(clip_request(old_logprobs, new_logprobs, advantages, clip_coef))
            example["title"] = "Your numbers"
            examples = [example]
        else:
            from ppo_cli.teach.explain import ClipRequest, check_clip_request

            check_clip_request(ClipRequest([-1.0], [-1.0], [0.0], clip_coef))
            examples = seed_clip_examples(clip_coef)
        if json_output:
            print_json(examples[0] if all(given) else {"examples": examples})
            return
        from ppo_cli.render.teach import explain_clip_view

        out.print(explain_clip_view(examples), soft_wrap=False)


def explain_advantage_command(
    run: Path = typer.Option(
        None,
        "--run",
        help="A trained text-QA run to sample from (default: a fresh 1-iteration run on the "
        "built-in set).",
    ),
    group_size: int = typer.Option(4, "--group-size", help="Completions per question."),
    questions: int = typer.Option(3, "--questions", help="Questions in the batch."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampled batch (and fresh run)."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """One batch, the advantage each completion gets under every estimator, side by side.

    Example: ppoqa explain-advantage   |   ppoqa explain-advantage --run runs/x --group-size 8
    """
    with handle_errors(json_output):
        from ppo_cli.teach.explain import explain_advantage

        if run is not None:
            from ppo_cli.core.rundir import find_run

            result = explain_advantage(find_run(run), seed, group_size, questions)
        else:
            import tempfile

            from ppo_cli.config import resolve
            from ppo_cli.core.trainer import train

            cfg = resolve({"iterations": 1, "seed": seed, "target_accuracy": None})
            with tempfile.TemporaryDirectory(prefix="ppoqa-explain-") as tmp:
                train(cfg, Path(tmp) / "run")
                result = explain_advantage(Path(tmp) / "run", seed, group_size, questions)
            result["run"] = "a fresh 1-iteration run on the built-in set"
        if json_output:
            print_json(result)
            return
        from ppo_cli.render.teach import explain_advantage_view

        out.print(explain_advantage_view(result))
