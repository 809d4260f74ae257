"""`ppoqa explain-gae`, `explain-clip` and `explain-advantage`: the seeds' worked numbers, or
yours, computed by the functions training uses (ppo_cli.teach.explain). The options are parsed here,
by typer: a bad list or number is a usage error naming the flag and the value (exit 2)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NewType

import typer

from ppo_cli.cli.common import BadValue, emit, handle_errors
from ppo_cli.cli.options import JsonFlag, bounded, one_of, option
from ppo_cli.errors import UsageError

if TYPE_CHECKING:
    from ppo_cli.teach.explain import GAERequest


_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}

# An option that is a comma-separated list ('1,-0.5,2' or '[1,-0.5,2]'), parsed by typer.
Numbers = NewType("Numbers", list)
Flags = NewType("Flags", list)


def _numbers(help: str) -> Any:
    """An option taking a comma-separated list of numbers."""
    return option(Numbers | None, help, parser=numbers, metavar="<numbers>")


def _items(text: str, hint: str) -> list[str]:
    """'a,b' or '[a,b]' -> ['a', 'b']; how long a list may be is ppo_cli.teach.explain's check."""
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    if not body.strip():
        raise BadValue("is an empty list", hint)
    return [item.strip() for item in body.split(",")]


def numbers(text: str) -> list[float]:
    """The typer parser of a list of finite numbers (how large is ppo_cli.teach.explain's check)."""
    out = []
    for i, item in enumerate(_items(text, "give comma-separated numbers: 1,2"), 1):
        try:
            out.append(float(item))
        except ValueError:
            hint = "give comma-separated numbers: -0.1,10"
            raise BadValue(f"item {i} ({item!r}) is not a number", hint) from None
        if not math.isfinite(out[-1]):
            hint = "use plain decimal numbers such as -0.1 or 9.8"
            raise BadValue(f"item {i} ({out[-1]!r}) is not a finite number", hint)
    return out


def done_flags(text: str) -> list[bool]:
    """The typer parser of --dones: 0/1 or true/false per step."""
    out = []
    for i, item in enumerate(_items(text, "give 0/1 per step: --dones 0,1"), 1):
        if item.lower() not in _TRUE | _FALSE:
            raise BadValue(
                f"item {i} ({item!r}) is not 0/1 or true/false",
                "mark the step where an episode ended with 1: --dones 0,1",
            )
        out.append(item.lower() in _TRUE)
    return out


def _examples() -> tuple[str, ...]:
    from ppo_cli.teach.explain import EXAMPLES

    return tuple(EXAMPLES)


def gae_request(
    rewards: list[float] | None = None,
    values: list[float] | None = None,
    dones: list[bool] | None = None,
    last_value: float | None = None,
    gamma: float | None = None,
    lam: float | None = None,
    example: str | None = None,
) -> GAERequest:
    """The request the options describe; no lists at all means one of the seeds' examples.
    Without --dones no step is terminal: the value after the last step is --last-value (0)."""
    from ppo_cli.teach.explain import EXAMPLES, GAERequest, check_request

    if rewards is None and values is None:
        if dones is not None:
            raise UsageError("--dones needs --rewards and --values", "give all three lists")
        base = EXAMPLES[example or "correct"]
        req = GAERequest(list(base.rewards), list(base.values), list(base.dones))
    elif rewards is None or values is None:
        missing = "--values" if rewards is not None else "--rewards"
        raise UsageError(f"{missing} is missing", "give --rewards and --values of equal length")
    elif example is not None:
        raise UsageError("--example and --rewards/--values exclude each other", "give one")
    else:
        req = GAERequest(rewards, values, dones if dones is not None else [False] * len(rewards))
    for name, value in (("last_value", last_value), ("gamma", gamma), ("gae_lambda", lam)):
        if value is not None:
            setattr(req, name, float(value))
    return check_request(req)


def explain_gae_command(
    source: Annotated[
        str | None,
        typer.Argument(
            help='\'-\' reads a JSON document from stdin: {"rewards": [...], "values": [...]}.'
        ),
    ] = None,
    rewards: _numbers("Rewards per step, e.g. -0.1,10.") = None,
    values: _numbers("Critic values V(s_t) per step, e.g. 8.2,9.8.") = None,
    dones: option(
        Flags | None,
        "1 where an episode ended at that step, e.g. 0,1 (default: none).",
        parser=done_flags,
        metavar="<flags>",
    ) = None,
    last_value: option(
        float | None, "V after the final step when it is not done (default 0)."
    ) = None,
    gamma: option(
        float | None,
        "Discount factor in [0, 1] (default 0.99).",
        callback=bounded(0, 1, "gamma, the discount: the default is 0.99"),
    ) = None,
    lam: option(
        float | None,
        "GAE lambda in [0, 1] (default 0.95).",
        callback=bounded(0, 1, "GAE lambda: the default is 0.95"),
    ) = None,
    example: option(
        str | None,
        "A seed example when no lists are given: correct (default), wrong, cartpole.",
        **one_of(_examples, "an unknown example: the seeds give correct, wrong and cartpole"),
    ) = None,
    run: option(
        Path | None, "Explain episodes sampled from this trained text-QA run instead."
    ) = None,
    episodes: option(
        int, "With --run: episodes to show.", callback=bounded(1, hint="e.g. --episodes 3")
    ) = 3,
    seed: option(int, "With --run: seed of the sampled batch.") = 0,
    json_output: JsonFlag = False,
) -> None:
    """Walk through GAE step by step: δ, advantages, returns and their normalization.

    Example: ppoqa explain-gae --rewards -0.1,-2.0 --values 8.2,5.1 --dones 0,1
    """
    with handle_errors(json_output):
        from ppo_cli.render.teach import explain_gae_view, explain_run_view
        from ppo_cli.teach.explain import explain_gae, explain_run, gae_request_from_json

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
            emit(result, json_output, explain_run_view, soft_wrap=False)  # prose wraps at spaces
            return
        if source == "-":
            if lists_given:
                raise UsageError(
                    "give the lists on stdin or as options, not both", "drop --rewards/--values"
                )
            try:
                text = sys.stdin.read()
            except UnicodeDecodeError:
                raise UsageError("stdin is not UTF-8 text", "pipe a JSON document") from None
            req = gae_request_from_json(text, last_value, gamma, lam)
        else:
            req = gae_request(rewards, values, dones, last_value, gamma, lam, example)
        emit(explain_gae(req), json_output, explain_gae_view, soft_wrap=False)


def explain_clip_command(
    old_logprobs: _numbers("Log-probabilities under the old policy, e.g. -1.0,-0.5.") = None,
    new_logprobs: _numbers("Log-probabilities under the new policy, e.g. -0.5,-0.3.") = None,
    advantages: _numbers("Advantages, e.g. 1.0,-0.5.") = None,
    clip_coef: option(
        float,
        "PPO clipping ε in (0, 1).",
        callback=bounded(0, 1, "e.g. --clip-coef 0.2", exclusive=True),
    ) = 0.2,
    json_output: JsonFlag = False,
) -> None:
    """Walk through PPO's clipped objective: ratios, both terms, the min, the loss.

    Example: ppoqa explain-clip --old-logprobs -1,-2 --new-logprobs -0.5,-2.5 --advantages 1,2
    """
    with handle_errors(json_output):
        from ppo_cli.render.teach import explain_clip_view
        from ppo_cli.teach.explain import ClipRequest, explain_clip, seed_clip_examples

        given = [x is not None for x in (old_logprobs, new_logprobs, advantages)]
        if any(given) and not all(given):
            raise UsageError(
                "give --old-logprobs, --new-logprobs and --advantages together",
                "or none of them for the seeds' examples",
            )
        if all(given):
            doc = explain_clip(ClipRequest(old_logprobs, new_logprobs, advantages, clip_coef))
            doc["title"] = "Your numbers"
            examples = [doc]
        else:
            examples = seed_clip_examples(clip_coef)
            doc = {"examples": examples}
        emit(doc, json_output, lambda _: explain_clip_view(examples), soft_wrap=False)


def explain_advantage_command(
    run: option(
        Path | None,
        "A trained text-QA run to sample from (default: a fresh 1-iteration run on the "
        "built-in set).",
    ) = None,
    group_size: option(
        int,
        "Completions per question.",
        callback=bounded(
            2,
            hint="the group estimators compare a completion with the others of its "
            "question: e.g. --group-size 4",
        ),
    ) = 4,
    questions: option(
        int, "Questions in the batch.", callback=bounded(1, hint="e.g. --questions 3")
    ) = 3,
    seed: option(int, "Seed of the sampled batch (and fresh run).") = 0,
    json_output: JsonFlag = False,
) -> None:
    """One batch, the advantage each completion gets under every estimator, side by side.

    Example: ppoqa explain-advantage   |   ppoqa explain-advantage --run runs/x --group-size 8
    """
    with handle_errors(json_output):
        from ppo_cli.render.teach import explain_advantage_view
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
        emit(result, json_output, explain_advantage_view)
