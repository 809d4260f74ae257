"""`ppoqa doctor [--run DIR]`: what went wrong in a text-QA run, with evidence and remedies."""

from __future__ import annotations

from ppo_cli.cli.common import handle_errors, out, print_json
from ppo_cli.cli.options import RunDir, option


def doctor_command(
    run: RunDir = None,
    json_output: option(
        bool,
        'Print {"run", "final_accuracy", "findings": [{"code", "message", "evidence", '
        '"remedy"}], "still_wrong": [{"question", "answer", "target"}]} on stdout.',
        "--json",
    ) = False,
) -> None:
    """Diagnose a run from its own records: same answer for many questions, hedging, word order,
    reward hacking, not learning, forgetting, loss exploding, entropy collapse, budget
    exhausted; then the questions still wrong.

    Example: ppoqa doctor   |   ppoqa doctor --run runs/text-qa-seed0-... --json
    """
    with handle_errors(json_output):
        from ppo_cli.core.rundir import find_run
        from ppo_cli.teach.doctor import (
            diagnose_records,
            load_records,
            render_findings,
            render_still_wrong,
            still_wrong,
        )

        path = find_run(run)
        records = load_records(path)
        findings = diagnose_records(records)
        wrong = still_wrong(records)
        total = len(records.results)
        if json_output:
            accuracy = round((total - len(wrong)) / max(1, total), 4)
            findings_doc = [f.to_dict() for f in findings]
            doc = {"run": str(path), "final_accuracy": accuracy, "findings": findings_doc}
            print_json(doc | {"still_wrong": wrong})
            return
        lines = render_findings(findings) or [f"{path}: no problems found"]
        for line in lines + render_still_wrong(wrong, total):
            out.print(line, markup=False, highlight=False)
