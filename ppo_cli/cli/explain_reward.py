"""`ppoqa explain-reward`: what each named reward pays for some answers, computed by the
environment's own scoring code (ppo_cli.textqa.rewards)."""

from __future__ import annotations

from typing import Any

from ppo_cli.cli.common import handle_errors, out, print_json
from ppo_cli.cli.options import JsonFlag, option, reward_names
from ppo_cli.errors import UsageError


def explain_reward_command(
    target: option(
        str | None, 'The right answer, e.g. "Buenos Aires" (default: two examples).'
    ) = None,
    answer: option(
        list[str] | None,
        "A candidate answer to score (repeatable; default: right, hedged, reordered, partial).",
    ) = None,
    reward: option(
        list[str] | None,
        "Only this reward (repeatable; default: every reward).",
        callback=reward_names,
    ) = None,
    json_output: JsonFlag = False,
) -> None:
    """Show what every reward pays for hedged, reordered and partial answers.

    Example: ppoqa explain-reward --target "Buenos Aires" --answer "Aires Buenos"
    """
    with handle_errors(json_output):
        from ppo_cli.textqa.data import tokenize
        from ppo_cli.textqa.rewards import (
            DEFAULT_EXAMPLES,
            DEFAULT_REWARD,
            REWARD_NAMES,
            REWARDS,
            default_answers,
            explain_rewards,
        )

        names = list(reward or REWARD_NAMES)
        if target is None and answer:
            raise UsageError("--answer needs --target", 'e.g. --target "Warsaw" --answer "Oslo"')
        if target is not None and not tokenize(target):
            raise UsageError("--target is empty", 'give the right answer, e.g. --target "Warsaw"')
        examples = (
            [(target, tuple(answer or default_answers(target)))]
            if target is not None
            else list(DEFAULT_EXAMPLES)
        )
        rows = [r for tgt, answers in examples for r in explain_rewards(tgt, list(answers), names)]
        if json_output:
            summaries = {n: REWARDS[n].summary for n in names}
            rows_doc = [r.__dict__ for r in rows]
            print_json({"default_reward": DEFAULT_REWARD, "rewards": summaries, "rows": rows_doc})
            return
        from rich.table import Table

        from ppo_cli.render import Fit

        for tgt, _ in examples:
            table = Table(title=f'What each reward pays, target "{tgt}"')
            table.add_column("answer")
            table.add_column("kind")
            for name in names:
                label = f"{name}{' (default)' if name == DEFAULT_REWARD else ''}"
                table.add_column(label, justify="right")
            by_answer: dict[str, dict[str, Any]] = {}  # answer -> its kind and each reward's
            for r in rows:
                if r.target in (" ".join(tokenize(tgt)), tgt):
                    by_answer.setdefault(r.answer, {"kind": r.kind})[r.reward] = r.final
            for a, cells in by_answer.items():
                table.add_row(f'"{a}"', cells["kind"], *(f"{cells[n]:+.2f}" for n in names))
            out.print(Fit(table))
        out.print(
            "Final-step reward (exact: +10; otherwise -2 + partial credit). Each word before "
            "<END> also costs 0.1 a step.",
            soft_wrap=False,  # prose wraps at spaces to the width; tables split themselves
        )
        for name in names:
            out.print(
                f"  {name}: {REWARDS[name].summary}", markup=False, highlight=False, soft_wrap=False
            )
