"""`ppoqa sft`: supervised warm start (teacher forcing) -> an ordinary text-QA run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ppo_cli.cli.common import err, handle_errors, out, print_json
from ppo_cli.cli.options import bounded, option, setting, settings, shares

SFT_SETTINGS = "dataset policy hidden_size seed answer_vocab max_answer_tokens"


@shares(
    *settings(SFT_SETTINGS),
    # a whole-answer cross-entropy step takes a larger rate than PPO's Config default
    setting("learning_rate", "--learning-rate", "--lr", default=0.01),
)
def sft_command(
    ctx: typer.Context,
    run_dir: option(
        Path | None, "Where to write the run (default: a new folder under ./runs/)."
    ) = None,
    epochs: option(
        int, "Passes over the dataset.", callback=bounded(1, hint="e.g. --epochs 60")
    ) = 60,
    batch_size: option(
        int,
        "Question-answer pairs per gradient step.",
        callback=bounded(1, hint="e.g. --batch-size 8"),
    ) = 8,
    eval_every: option(
        int,
        "Greedy evaluation every N epochs, and after the last.",
        callback=bounded(1, hint="e.g. --eval-every 5"),
    ) = 1,
    resume: option(
        Path | None, "Continue an interrupted SFT run in this folder, with its own settings."
    ) = None,
    quiet: option(bool, "No progress on stderr.", "--quiet", "-q") = False,
    json_output: option(bool, "Print one JSON summary on stdout, nothing else.", "--json") = False,
    **settings: Any,
) -> None:
    """Supervised fine-tuning: learn the dataset's answers by teacher forcing (cross-entropy on
    the answer tokens and <END>). The run directory works with eval, ask, plot, explain-gae and
    `train --init-from`, the RLHF starting point.

    Example: ppoqa sft --run-dir runs/sft   |   ppoqa train --init-from runs/sft --kl-coef 0.5
    """
    with handle_errors(json_output):
        from ppo_cli.config import Config, resolve
        from ppo_cli.core.trainer import Callbacks
        from ppo_cli.errors import UsageError
        from ppo_cli.render import qa_results_table
        from ppo_cli.textqa.sft import sft

        cfg = resolve({k: v for k, v in settings.items() if v is not None})

        class Progress(Callbacks):
            def on_start(self, cfg: Config, path: Path, total: int) -> None:
                if not (quiet or json_output):
                    err.print(f"[bold]ppoqa sft[/] policy={cfg.policy} seed={cfg.seed} -> {path}")

            def on_iteration(self, record: dict[str, Any]) -> None:
                e = record["iteration"]
                if not (quiet or json_output) and (e == epochs or e % max(1, epochs // 6) == 0):
                    line = f"epoch {e:>4}/{epochs}  loss {record['loss']:.4f}  "
                    line += f"token acc {100 * record['token_accuracy']:.0f}%"
                    if "eval_accuracy" in record:
                        line += f"  greedy acc {100 * record['eval_accuracy']:.0f}%"
                    err.print(line, highlight=False)

            def on_warning(self, message: str) -> None:
                err.print(f"ppoqa: warning: {message}", markup=False, highlight=False)

        if resume is not None:
            if run_dir is not None and run_dir != resume:
                raise UsageError(
                    "--resume and --run-dir name two folders", "give --resume DIR alone"
                )
            changed = [
                f"--{name.replace('_', '-')}"
                for name in (*settings, "epochs", "batch_size", "eval_every")
                if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"  # typed
            ]
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
            f"{result.wall_seconds:.2f} s -> {result.run_dir}\n"
            f"Next: ppoqa eval --run {result.run_dir}   |   "
            f"ppoqa train --init-from {result.run_dir} --kl-coef 0.5",
            highlight=False,
        )
