"""`ppoqa ask`: answer questions with a trained run; one answer per line for pipelines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ppo_cli.cli.common import handle_errors
from ppo_cli.errors import PpoqaError, UsageError


def _read_stdin() -> str:
    """stdin as UTF-8 text; other bytes are a user error, not a traceback."""
    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PpoqaError(
            f"stdin: not UTF-8 text (byte {exc.start})",
            "pipe questions as UTF-8 text, one a line",
            code="input",
        ) from None


def ask_command(
    question: str = typer.Argument(
        None, help="The question; '-' (or none, with stdin piped) reads one per line."
    ),
    run: Path = typer.Option(
        None, "--run", help="Run directory (default: the newest under ./runs/)."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="One JSON object per answer: {question, answer}."
    ),
) -> None:
    """Answer a question with a trained text-QA run; prints only the answer.

    Example: ppoqa ask "What is 2+2?"   |   printf 'What is 2+2?\\n' | ppoqa ask
    """
    with handle_errors(json_output):
        if question is None or question == "-":
            if question is None and sys.stdin.isatty():
                raise UsageError(
                    "no question given", 'pass one: ppoqa ask "What is 2+2?", or pipe lines in'
                )
            questions = [line.strip() for line in _read_stdin().splitlines() if line.strip()]
        else:
            from ppo_cli.data import is_visible

            if not is_visible(question):
                raise UsageError(
                    "the question is empty" + (" (only invisible characters)" if question else ""),
                    'pass a question: ppoqa ask "What is 2+2?"',
                )
            questions = [question]
        from ppo_cli.evaluate import answer_questions, load_text_run
        from ppo_cli.rundir import find_run

        text_run = load_text_run(find_run(run))
        answers, unknown = answer_questions(text_run, questions)
        if unknown:
            words = ", ".join(repr(w) for w in unknown)
            sys.stderr.write(
                f"ppoqa: warning: words this run never saw were read as <UNK>: {words}\n"
            )
        for q, a in zip(questions, answers, strict=True):
            line = (
                json.dumps({"question": q, "answer": a}, ensure_ascii=False) if json_output else a
            )
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
