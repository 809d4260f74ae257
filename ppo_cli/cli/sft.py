"""`ppoqa sft`: supervised warm start (teacher forcing) -> an ordinary text-QA run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ppo_cli.cli.common import err, handle_errors, out, print_json


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the option was typed on the command line (not its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def sft_command(
    ctx: typer.Context,
    dataset: Path = typer.Option(
        None, "--dataset", help="YAML QA dataset (default: the built-in five questions)."
    ),
    run_dir: Path = typer.Option(
        None, "--run-dir", help="Where to write the run (default: a new folder under ./runs/)."
    ),
    epochs: int = typer.Option(60, "--epochs", help="Passes over the dataset (default 60)."),
    batch_size: int = typer.Option(
        8, "--batch-size", help="Question-answer pairs per gradient step (default 8)."
    ),
    eval_every: int = typer.Option(
        1, "--eval-every", help="Greedy evaluation every N epochs, and after the last (default 1)."
    ),
    learning_rate: float = typer.Option(
        0.01, "--learning-rate", "--lr", help="Adam learning rate (default 0.01)."
    ),
    policy: str = typer.Option("lstm", "--policy", help="Network: lstm (default) or transformer."),
    hidden_size: int = typer.Option(64, "--hidden-size", help="Width of the network (default 64)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (default 0)."),
    answer_vocab: bool = typer.Option(
        True,
        "--answer-vocab/--no-answer-vocab",
        help="Generate only words that occur in the dataset's answers (default on, as in train).",
    ),
    max_answer_tokens: int = typer.Option(
        None, "--max-answer-tokens", help="Answer length limit (default: dataset's, else 4)."
    ),
    resume: Path = typer.Option(
        None,
        "--resume",
        help="Continue an interrupted SFT run in this folder, with its own settings.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON summary on stdout, nothing else."
    ),
) -> None:
    """Supervised fine-tuning: learn the dataset's answers by teacher forcing (cross-entropy on
    the answer tokens and <END>). The run directory works with eval, ask, plot, explain-gae and
    `train --init-from`, the RLHF starting point.

    Example: ppoqa sft --run-dir runs/sft   |   ppoqa train --init-from runs/sft --kl-coef 0.5
    """
    with handle_errors(json_output):
        from ppo_cli.config import Config, apply_overrides, validate
        from ppo_cli.errors import ConfigError, UsageError
        from ppo_cli.render import qa_results_table
        from ppo_cli.textqa.sft import SFTCallbacks, sft

        given: dict[str, Any] = {
            "dataset": str(dataset) if dataset is not None else None,
            "learning_rate": learning_rate,
            "policy": policy,
            "hidden_size": hidden_size,
            "seed": seed,
            "answer_vocab": answer_vocab,
            "max_answer_tokens": max_answer_tokens,
        }
        try:
            cfg = validate(apply_overrides(Config(), given, "option"), "option")
            for name, value in (
                ("--epochs", epochs),
                ("--batch-size", batch_size),
                ("--eval-every", eval_every),
            ):
                if value < 1:
                    example = {"--epochs": 60, "--batch-size": 8, "--eval-every": 5}[name]
                    raise ConfigError(f"{name} must be >= 1, got {value}", f"e.g. {name} {example}")
        except ConfigError as exc:  # a bad flag value is a usage error: exit 2
            raise UsageError(exc.message, exc.hint) from None

        class Progress(SFTCallbacks):
            def on_start(self, cfg: Config, path: Path, total: int) -> None:
                if not (quiet or json_output):
                    err.print(f"[bold]ppoqa sft[/] policy={cfg.policy} seed={cfg.seed} -> {path}")

            def on_epoch(self, record: dict[str, Any]) -> None:
                e = record["iteration"]
                if not (quiet or json_output) and (e == epochs or e % max(1, epochs // 6) == 0):
                    err.print(
                        f"epoch {e:>4}/{epochs}  loss {record['loss']:.4f}  "
                        f"token acc {100 * record['token_accuracy']:.0f}%"
                        + (
                            f"  greedy acc {100 * record['eval_accuracy']:.0f}%"
                            if "eval_accuracy" in record
                            else ""
                        ),
                        highlight=False,
                    )

            def on_warning(self, message: str) -> None:
                err.print(f"ppoqa: warning: {message}", markup=False, highlight=False)

        if resume is not None:
            if run_dir is not None and run_dir != resume:
                raise UsageError(
                    "--resume and --run-dir name two folders", "give --resume DIR alone"
                )
            changed = [
                f"--{name.replace('_', '-')}"
                for name in ("dataset", "epochs", "batch_size", "eval_every", "learning_rate",
                             "policy", "hidden_size", "seed", "answer_vocab", "max_answer_tokens")
                if _given(ctx, name)
            ]  # fmt: skip
            if changed:
                raise UsageError(
                    f"{changed[0]} cannot be given with --resume: the run keeps its own settings",
                    f"drop {changed[0]}, or start a new run with another --run-dir",
                )
        result = sft(
            cfg, epochs, resume or run_dir, Progress(), batch_size, eval_every,
            resume=resume is not None,
        )  # fmt: skip
        if json_output:
            print_json(result.to_dict())
            return
        out.print(qa_results_table(result.final_results, "Greedy evaluation after SFT"))
        err.print(
            f"SFT: {result.epochs} epochs, {result.gradient_updates} gradient updates, "
            f"{result.wall_seconds:.2f} s -> {result.run_dir}",
            highlight=False,
        )
        err.print(
            f"Next: ppoqa eval --run {result.run_dir}   |   "
            f"ppoqa train --init-from {result.run_dir} --kl-coef 0.5",
            highlight=False,
        )
