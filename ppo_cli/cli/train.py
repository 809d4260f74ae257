"""`ppoqa train`: options -> Config -> trainer.train() -> progress, tables, run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ppo_cli.cli.common import err, handle_errors, out, print_json
from ppo_cli.config import FIELD_TYPES, Config, apply_overrides, load_config_file, validate
from ppo_cli.errors import ConfigError, UsageError
from ppo_cli.presets import PRESET_NAMES, base_config
from ppo_cli.render import qa_results_table, training_math_table
from ppo_cli.trace import TraceSelection, parse_trace_iterations
from ppo_cli.trainer import Callbacks, train


class RichCallbacks(Callbacks):
    """Progress bar on stderr with live reward/accuracy; greedy tables every `show_every`."""

    def __init__(
        self,
        show_every: int,
        quiet: bool,
        trace: TraceSelection | None = None,
        keep_traces: bool = False,
    ) -> None:
        self.show_every = show_every
        self.quiet = quiet
        self.progress: Progress | None = None
        self.last_acc: float | None = None
        self.last_return: float | None = None
        self.trace = trace
        self.keep_traces = keep_traces  # --json: traces go into the summary, not on stderr
        self.traces: list[dict[str, Any]] = []

    def wants_trace(self, iteration: int, total: int) -> bool:
        return self.trace is not None and self.trace.wants(iteration, total)

    def on_trace(self, record: dict[str, Any]) -> None:
        if self.keep_traces:
            self.traces.append(record)
            return
        from ppo_cli.cli.teach_tables import trace_view

        console = self.progress.console if self.progress is not None else err
        console.print(trace_view(record))

    def on_start(self, cfg: Config, run_dir: Path, total: int) -> None:
        if self.quiet:
            return
        err.print(f"[bold]ppoqa train[/] env={cfg.env} seed={cfg.seed} -> {run_dir}")
        self.progress = Progress(
            TextColumn("[bold blue]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        )
        self.task = self.progress.add_task("train", total=total, stats="")
        self.progress.start()

    def on_iteration(self, record: dict[str, Any]) -> None:
        if self.progress is None:
            return
        if "eval_accuracy" in record:
            self.last_acc = record["eval_accuracy"]
        if "mean_reward" in record:
            stats = f"reward {record['mean_reward']:+.2f}"
            if self.last_acc is not None:
                stats += f"  acc {100 * self.last_acc:.0f}%"
        else:  # gymnasium: iterations with no finished episode keep the last return shown
            self.last_return = record.get("episodic_return", self.last_return)
            ret = "-" if self.last_return is None else f"{self.last_return:.1f}"
            stats = f"return {ret}  SPS {record.get('sps', 0):,.0f}"
        self.progress.update(
            self.task, completed=record.get("progress", record["iteration"]), stats=stats
        )

    def on_eval(self, iteration: int, results: list[Any]) -> None:
        if self.progress is not None and self.show_every and iteration % self.show_every == 0:
            self.progress.console.print(
                qa_results_table(results, f"Greedy evaluation, iteration {iteration}")
            )

    def on_warning(self, message: str) -> None:
        console = self.progress.console if self.progress is not None else err
        console.print(f"ppoqa: warning: {message}", markup=False, highlight=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def resolve_config(
    config_file: Path | None, overrides: dict[str, Any], preset: str | None = None
) -> Config:
    """defaults < tuned env settings < policy defaults < --preset < --config YAML < flags."""
    try:
        cfg = base_config(config_file, preset, overrides)
    except ConfigError as exc:
        if preset is not None and exc.message.startswith("--preset"):
            raise UsageError(exc.message, exc.hint) from None
        raise
    if config_file is not None:
        # A bad value the file sets (and no flag replaces) is the file's error (exit 1), named
        # as `file: 'key'`, not blamed on a flag the user never typed.
        from_file = load_config_file(config_file)
        kept = {str(k).replace("-", "_") for k in from_file} - set(overrides)
        validate(Config(**{k: getattr(cfg, k) for k in kept}), str(config_file))
    try:
        cfg = apply_overrides(cfg, overrides, "option")
        return validate(cfg, "option")
    except ConfigError as exc:  # a bad flag value is a usage error: exit 2
        raise UsageError(exc.message, exc.hint) from None


def train_command(
    env: str = typer.Option(
        None, "--env", help="text-qa (default) or a gymnasium id such as CartPole-v1."
    ),
    dataset: str = typer.Option(
        None, "--dataset", help="QA dataset YAML file (default: the built-in five questions)."
    ),
    seed: int = typer.Option(
        None, "--seed", help="Random seed (default 0). Same seed, same machine -> same metrics."
    ),
    iterations: int = typer.Option(
        None, "--iterations", help="Text QA: PPO iterations at most (default 150)."
    ),
    run_dir: Path = typer.Option(
        None, "--run-dir", help="Where to write the run (default: a new folder under ./runs/)."
    ),
    resume: Path = typer.Option(
        None,
        "--resume",
        help="Continue an interrupted run in this directory with its own config.yaml "
        "(--iterations may grow; settings that change what it learns are refused).",
    ),
    save_every: int = typer.Option(
        None, "--save-every", help="Checkpoint every N iterations (default 10; 0: start and end)."
    ),
    config: Path = typer.Option(None, "--config", help="YAML file of settings; flags override it."),
    policy: str = typer.Option(
        None, "--policy", help="Text QA network: lstm (default) or transformer."
    ),
    hidden_size: int = typer.Option(
        None, "--hidden-size", help="Width of the network (default 64)."
    ),
    num_episodes: int = typer.Option(
        None,
        "--num-episodes",
        help="Text QA: episodes per iteration (default: 8 per question, at least 64).",
    ),
    learning_rate: float = typer.Option(
        None, "--learning-rate", "--lr", help="Adam learning rate (default 0.005)."
    ),
    anneal_lr: bool = typer.Option(
        None, "--anneal-lr/--no-anneal-lr", help="Decay the learning rate linearly to 0."
    ),
    gamma: float = typer.Option(None, "--gamma", help="Discount factor (default 0.99)."),
    gae_lambda: float = typer.Option(None, "--gae-lambda", help="GAE lambda (default 0.95)."),
    update_epochs: int = typer.Option(
        None, "--update-epochs", help="Passes over each batch (default 4)."
    ),
    num_minibatches: int = typer.Option(
        None, "--num-minibatches", help="Minibatches per epoch (default 2)."
    ),
    clip_coef: float = typer.Option(
        None, "--clip-coef", help="PPO clipping epsilon (default 0.2)."
    ),
    clip_vloss: bool = typer.Option(
        None, "--clip-vloss/--no-clip-vloss", help="Clip the value loss too."
    ),
    norm_adv: bool = typer.Option(
        None, "--norm-adv/--no-norm-adv", help="Normalize advantages (default on)."
    ),
    ent_coef: float = typer.Option(
        None, "--ent-coef", help="Entropy bonus coefficient (default 0.03)."
    ),
    vf_coef: float = typer.Option(None, "--vf-coef", help="Value loss coefficient (default 0.5)."),
    max_grad_norm: float = typer.Option(
        None, "--max-grad-norm", help="Gradient norm clip (default 0.5)."
    ),
    target_kl: float = typer.Option(
        None, "--target-kl", help="Stop an update's epochs once approx_kl exceeds this."
    ),
    target_accuracy: float = typer.Option(
        None,
        "--target-accuracy",
        help="Text QA: stop once greedy accuracy reaches this (default 1.0).",
    ),
    no_early_stop: bool = typer.Option(
        False, "--no-early-stop", help="Text QA: run all iterations."
    ),
    eval_every: int = typer.Option(
        None, "--eval-every", help="Text QA: greedy evaluation every N iterations (default 1)."
    ),
    max_answer_tokens: int = typer.Option(
        None,
        "--max-answer-tokens",
        help="Text QA: answer length limit (default: dataset's, else 4).",
    ),
    reward: str = typer.Option(
        None,
        "--reward",
        help="Text QA: named reward: prefix (default), lcs, f1, exact or seed (the seed's "
        "overlap, which pays for hedging); `ppoqa explain-reward` shows what each pays.",
    ),
    reward_partial: float = typer.Option(
        None,
        "--reward-partial",
        help="Text QA: weight of the reward's partial credit in [0, 1] (default 4: a "
        "half-right answer earns -2 + 2).",
    ),
    timesteps: int = typer.Option(
        None,
        "--timesteps",
        help="Gymnasium: environment steps to train for (default: the env's tuned value).",
    ),
    num_envs: int = typer.Option(None, "--num-envs", help="Gymnasium: parallel environments."),
    num_steps: int = typer.Option(
        None, "--num-steps", help="Gymnasium: steps per environment per iteration."
    ),
    vector_mode: str = typer.Option(
        None, "--vector-mode", help="Gymnasium: auto, sync, async (processes) or vector."
    ),
    reward_scale: float = typer.Option(
        None, "--reward-scale", help="Gymnasium: multiply rewards by this for learning only."
    ),
    device: str = typer.Option(
        None,
        "--device",
        help="cpu (default), cuda or auto (gymnasium; text QA always uses the CPU).",
    ),
    threads: int = typer.Option(
        None, "--threads", help="torch CPU threads (default 1: fastest for small nets)."
    ),
    # -- issue 6 extensions: presets, curriculum, TensorBoard --
    preset: str = typer.Option(
        None,
        "--preset",
        help=f"Settings bundle: {', '.join(PRESET_NAMES)} (balanced = defaults); "
        "--config and flags override it.",
    ),
    curriculum: bool = typer.Option(
        None,
        "--curriculum/--no-curriculum",
        help="Text QA: start with the dataset's easiest level, add the next when earned.",
    ),
    curriculum_threshold: float = typer.Option(
        None,
        "--curriculum-threshold",
        help="Text QA: greedy accuracy on the active levels that adds the next (default 0.8).",
    ),
    tensorboard: bool = typer.Option(
        None,
        "--tensorboard/--no-tensorboard",
        help="Write TensorBoard scalars (CleanRL names) to <run dir>/tensorboard; "
        "needs the optional tensorboard package.",
    ),
    answer_vocab: bool = typer.Option(
        None,
        "--answer-vocab/--no-answer-vocab",
        help="Text QA: generate only words that occur in the dataset's answers "
        "(quality preset: on).",
    ),
    # -- end issue 6 --
    # -- issue 13: RLHF --
    init_from: str = typer.Option(
        None,
        "--init-from",
        help="Text QA: start from this run's weights (ppoqa sft or train); its policy, frozen, "
        "is the reference of the KL penalty. Dataset and network default to that run's.",
    ),
    kl_coef: float = typer.Option(
        None,
        "--kl-coef",
        help="Per-token reward -C * KL(pi || pi_ref) to the frozen reference (default 0: off).",
    ),
    kl_estimator: str = typer.Option(
        None,
        "--kl-estimator",
        help="k1 = logp - logp_ref (default) or k3 = (r-1) - log r, r = p_ref/p (never < 0).",
    ),
    kl_target: float = typer.Option(
        None,
        "--kl-target",
        help="Adapt --kl-coef toward this mean per-token KL (Ziegler et al. 2019).",
    ),
    kl_horizon: int = typer.Option(
        None,
        "--kl-horizon",
        help="With --kl-target: episodes over which the coefficient may change by 20% "
        "(default 640).",
    ),
    reward_fn: str = typer.Option(
        None,
        "--reward-fn",
        help="Text QA: FILE.py:NAME or module:NAME, a function (question, answer, target) -> "
        "float that replaces the task score (e.g. examples/proxy_paris.py:is_paris).",
    ),
    # -- end issue 13 --
    show_every: int = typer.Option(
        20, "--show-every", help="Print a greedy evaluation table every N iterations (0: never)."
    ),
    trace: bool = typer.Option(
        False,
        "--trace",
        help="Show what the update saw: episodes, advantages, clipping, per-epoch losses "
        "(on stderr, also with --quiet; with --json inside the summary).",
    ),
    trace_iterations: str = typer.Option(
        None,
        "--trace-iterations",
        help="Which iterations --trace shows: numbers, first, last, all (default first,last); "
        "implies --trace.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or tables on stderr."),
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON summary on stdout, nothing else."
    ),
) -> None:
    """Train a PPO agent and write a run directory.

    Example: ppoqa train --seed 1   |   ppoqa train --dataset examples/capitals.yaml
    """
    with handle_errors(json_output):
        given = {k: v for k, v in locals().items() if k in FIELD_TYPES and v is not None}
        if reward is not None:
            from ppo_cli.envs.rewards import REWARD_NAMES, check_reward_name
            from ppo_cli.errors import PpoqaError

            try:
                check_reward_name(reward, "--reward")
            except PpoqaError as exc:  # a bad flag value is a usage error: exit 2
                raise UsageError(exc.message, exc.hint) from None
            assert reward in REWARD_NAMES
        if no_early_stop:
            given["target_accuracy"] = None
        if resume is not None:
            if preset is not None:
                raise UsageError(
                    "--preset cannot be combined with --resume", "the run keeps its own settings"
                )
            cfg = _resume_config(resume, run_dir, config, given)
            run_dir = resume
        else:
            if init_from is not None:
                given = _init_from_network(init_from, given)
            cfg = resolve_config(config, given, preset)
        selection = parse_trace_iterations(trace_iterations) if trace or trace_iterations else None
        cb = RichCallbacks(show_every, quiet or json_output, selection, json_output)
        try:
            result = train(cfg, run_dir, cb, resume=resume is not None)
        finally:
            cb.close()
        summary = result.to_dict()
        if selection is not None and json_output:
            summary["traces"] = cb.traces
        if json_output:
            print_json(summary)
            return
        if result.final_results:
            out.print(qa_results_table(result.final_results, "Final greedy evaluation"))
        out.print(training_math_table(summary))
        if cfg.is_text_qa:
            question = _example_question(result)
            err.print(f'Next: ppoqa eval --run {result.run_dir}   |   ppoqa ask "{question}"')
        else:
            err.print(f"Next: ppoqa eval --run {result.run_dir}")


def _resume_config(
    resume: Path, run_dir: Path | None, config: Path | None, given: dict[str, Any]
) -> Config:
    """The run's own config; --config, another --run-dir and meaning-changing flags refused."""
    from ppo_cli.checkpointing import resume_config
    from ppo_cli.rundir import find_run

    if config is not None:
        raise UsageError(
            "--config cannot be combined with --resume: the run keeps its own config.yaml",
            "drop --config",
        )
    if run_dir is not None and run_dir.resolve() != resume.resolve():
        raise UsageError(
            "--run-dir cannot be combined with --resume: a run resumes in its own directory",
            "drop --run-dir",
        )
    return resume_config(find_run(resume), given)


def _init_from_network(init_from: str, given: dict[str, Any]) -> dict[str, Any]:
    """--init-from: the network (kind, width, answer vocabulary) is the starting run's; a flag
    that asks for another one is refused by the trainer."""
    from ppo_cli.rundir import read_config

    path = Path(init_from)
    if not (path / "config.yaml").is_file():
        return given  # the trainer reports a missing or foreign run with its own message
    theirs = read_config(path)
    filled = dict(given)
    for key in ("policy", "hidden_size", "answer_vocab"):
        if key not in filled and key in theirs:
            filled[key] = theirs[key]
    return filled


def _example_question(result: Any) -> str:
    return result.final_results[0].question if result.final_results else "..."
