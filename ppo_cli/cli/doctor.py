"""`ppoqa doctor --run DIR`: what went wrong in a text-QA run, with evidence and remedies."""

from __future__ import annotations

from pathlib import Path

import typer

from ppo_cli.cli.common import handle_errors, out, print_json


def doctor_command(
    run: Path = typer.Option(..., "--run", help="A run directory written by `ppoqa train`."),
    json_output: bool = typer.Option(
        False,
        "--json",
        help='Print {"findings": [{"code", "message", "evidence", "remedy"}]} on stdout.',
    ),
) -> None:
    """Diagnose a run from its own records: same answer for many questions, hedging, word order,
    not learning, forgetting, loss exploding, entropy collapse, budget exhausted.

    Example: ppoqa doctor --run runs/text-qa-seed0-...
    """
    with handle_errors(json_output):
        from ppo_cli.doctor import diagnose, render_findings

        findings = diagnose(run)
        if json_output:
            print_json({"findings": [f.to_dict() for f in findings]})
            return
        if not findings:
            out.print(f"{run}: no problems found")
            return
        for line in render_findings(findings):
            out.print(line, markup=False, highlight=False)
