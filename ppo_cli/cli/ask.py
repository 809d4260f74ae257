"""`ppoqa ask`: answer questions with a trained run; one answer per line for pipelines."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from ppo_cli.cli.common import handle_errors
from ppo_cli.cli.options import RunDir, option
from ppo_cli.errors import PpoqaError, UsageError

# `--strict`: every answer is still printed, then the exit code says a question was
# unfamiliar: 3, apart from 1 (an error: nothing answered) and 2 (bad usage).
UNFAMILIAR_EXIT = 3


def ask_command(
    question: Annotated[
        str | None,
        typer.Argument(help="The question; '-' (or none, with stdin piped) reads one per line."),
    ] = None,
    run: RunDir = None,
    json_output: option(
        bool,
        "One JSON object per answer: {question, answer, confidence, familiar, "
        "unknown_words, nearest, similarity}.",
        "--json",
    ) = False,
    strict: option(
        bool,
        f"Exit {UNFAMILIAR_EXIT} (after printing every answer) when a question is "
        "unfamiliar: unknown words, or under 0.6 word overlap with every training question.",
        "--strict",
    ) = False,
    verbose: option(
        bool,
        "Also a line on stderr per answer: its confidence and the nearest training question.",
        "--verbose",
        "-v",
    ) = False,
) -> None:
    """Answer a question with a trained text-QA run; prints only the answer.

    stdout holds the answers alone; an unfamiliar question gets a warning on stderr with the
    answer's confidence (its probability under the policy). --json carries both per answer.

    Example: ppoqa ask "What is 2+2?"   |   printf 'What is 2+2?\\n' | ppoqa ask --json
    """
    with handle_errors(json_output):
        if question is None or question == "-":
            if question is None and sys.stdin.isatty():
                raise UsageError(
                    "no question given", 'pass one: ppoqa ask "What is 2+2?", or pipe lines in'
                )
            # stdin as UTF-8 text; other bytes are a user error, not a traceback
            data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
            try:
                text = data if isinstance(data, str) else data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PpoqaError(
                    f"stdin: not UTF-8 text (byte {exc.start})",
                    "pipe questions as UTF-8 text, one a line",
                    code="input",
                ) from None
            questions = [line.strip() for line in text.splitlines() if line.strip()]
        else:
            from ppo_cli.textqa.data import is_visible

            if not is_visible(question):
                raise UsageError(
                    "the question is empty" + (" (only invisible characters)" if question else ""),
                    'pass a question: ppoqa ask "What is 2+2?"',
                )
            questions = [question]
        from ppo_cli.core.rundir import find_run
        from ppo_cli.textqa.evaluate import ask, load_text_run

        text_run = load_text_run(find_run(run))
        answers = ask(text_run, questions)
        notes = []
        for a in answers:
            line = json.dumps(a.to_dict(), ensure_ascii=False) if json_output else a.answer
            sys.stdout.write(line + "\n")
            if json_output:
                continue
            if not a.familiar:
                notes.append(
                    f'ppoqa: warning: unfamiliar question "{a.question}": {a.reason()}; '
                    f"the answer is a guess (confidence {100 * a.confidence:.0f}%)"
                )
            elif verbose:
                notes.append(
                    f'ppoqa: "{a.question}" -> "{a.answer}": confidence '
                    f'{100 * a.confidence:.0f}%, nearest training question "{a.nearest}" '
                    f"(word overlap {a.similarity:.2f})"
                )
        sys.stdout.flush()
        if notes:  # after the answers, so a reader of stdout gets them first
            sys.stderr.write("\n".join(notes) + "\n")
            sys.stderr.flush()
        if strict and not all(a.familiar for a in answers):
            raise typer.Exit(UNFAMILIAR_EXIT)
