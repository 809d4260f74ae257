"""`ppoqa train`: options -> config.resolve() -> trainer.train() -> progress, tables, run dir.

Each settings option takes its help, panel and shown default from its Config field, so `--help`
cannot disagree with the code. torch and the core are imported only once a run starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ppo_cli.cli.common import (
    READER_GONE,
    err,
    handle_errors,
    out,
    print_json,
    reader_gone_stops_at_boundary,
)
from ppo_cli.cli.help import complete_from, env_ids
from ppo_cli.config import CHOICES, FIELDS, REWARD_CHOICES, Config
from ppo_cli.errors import UsageError
from ppo_cli.presets import PRESET_NAMES

# TAB completion of the settings that take one of a few values, and of --env
COMPLETIONS = {name: complete_from(values) for name, values in CHOICES.items()} | {
    "reward": complete_from(REWARD_CHOICES),
    "kl_in": complete_from(("reward", "loss")),
    "env": complete_from(env_ids),
}


def opt(name: str, *flags: str) -> Any:
    """The option for Config field `name`: help, panel and default from its definition."""
    f = FIELDS[name]
    flag = f"--{name.replace('_', '-')}"
    if str(f.type) == "bool":
        flags = (f"{flag}/--no-{name.replace('_', '-')}",)
    default = f.default
    shown = {True: "on", False: "off"}.get(default) if isinstance(default, bool) else default
    more = "" if shown is None else f" \\[default: {shown}]"
    return typer.Option(
        *(flags or (flag,)),
        help=f.metadata["help"] + more,
        rich_help_panel=f.metadata["panel"],
        autocompletion=COMPLETIONS.get(name),
    )


Str, Int, Float, Bool = str | None, int | None, float | None, bool | None
RUN, QA, OUT = "Run", "Text QA", "Output"


def train_command(
    ctx: typer.Context,
    env: Annotated[Str, opt("env")] = None,
    dataset: Annotated[Str, opt("dataset")] = None,
    seed: Annotated[Int, opt("seed")] = None,
    policy: Annotated[Str, opt("policy")] = None,
    hidden_size: Annotated[Int, opt("hidden_size")] = None,
    iterations: Annotated[Int, opt("iterations")] = None,
    stall_iterations: Annotated[Int, opt("stall_iterations")] = None,
    timesteps: Annotated[Int, opt("timesteps")] = None,
    target_accuracy: Annotated[Float, opt("target_accuracy")] = None,
    target_return: Annotated[Float, opt("target_return")] = None,
    no_early_stop: Annotated[
        bool,
        typer.Option(
            "--no-early-stop",
            help="Run all iterations (text QA) or timesteps (gymnasium): no early stop.",
            rich_help_panel=QA,
        ),
    ] = False,
    eval_every: Annotated[Int, opt("eval_every")] = None,
    save_every: Annotated[Int, opt("save_every")] = None,
    preset: Annotated[
        Str,
        typer.Option(
            help=f"Settings bundle: {', '.join(PRESET_NAMES)} (balanced = defaults); "
            "--config and flags override it.",
            rich_help_panel=QA,
            autocompletion=complete_from(PRESET_NAMES),
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML file of settings; flags override it.", rich_help_panel=RUN),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue an interrupted run in this directory with its own config.yaml "
            "(--iterations may grow; settings that change what it learns are refused).",
            rich_help_panel=RUN,
        ),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the run (default: new under ./runs/).", rich_help_panel=RUN
        ),
    ] = None,
    device: Annotated[Str, opt("device")] = None,
    threads: Annotated[Int, opt("threads")] = None,
    learning_rate: Annotated[Float, opt("learning_rate", "--learning-rate", "--lr")] = None,
    anneal_lr: Annotated[Bool, opt("anneal_lr")] = None,
    gamma: Annotated[Float, opt("gamma")] = None,
    gae_lambda: Annotated[Float, opt("gae_lambda")] = None,
    update_epochs: Annotated[Int, opt("update_epochs")] = None,
    num_minibatches: Annotated[Int, opt("num_minibatches")] = None,
    clip_coef: Annotated[Float, opt("clip_coef")] = None,
    clip_vloss: Annotated[Bool, opt("clip_vloss")] = None,
    norm_adv: Annotated[Bool, opt("norm_adv")] = None,
    norm_adv_minibatch: Annotated[Bool, opt("norm_adv_minibatch")] = None,
    ent_coef: Annotated[Float, opt("ent_coef")] = None,
    vf_coef: Annotated[Float, opt("vf_coef")] = None,
    max_grad_norm: Annotated[Float, opt("max_grad_norm")] = None,
    target_kl: Annotated[Float, opt("target_kl")] = None,
    num_episodes: Annotated[Int, opt("num_episodes")] = None,
    max_answer_tokens: Annotated[Int, opt("max_answer_tokens")] = None,
    reward: Annotated[Str, opt("reward")] = None,
    reward_partial: Annotated[Float, opt("reward_partial")] = None,
    advantage: Annotated[Str, opt("advantage")] = None,
    group_size: Annotated[Int, opt("group_size")] = None,
    loss_agg: Annotated[Str, opt("loss_agg")] = None,
    focus_unsolved: Annotated[Float, opt("focus_unsolved")] = None,
    curriculum: Annotated[Bool, opt("curriculum")] = None,
    curriculum_threshold: Annotated[Float, opt("curriculum_threshold")] = None,
    answer_vocab: Annotated[Bool, opt("answer_vocab")] = None,
    answer_positions: Annotated[Bool, opt("answer_positions")] = None,
    answer_memory: Annotated[Bool, opt("answer_memory")] = None,
    probes: Annotated[Int, opt("probes")] = None,
    init_from: Annotated[Str, opt("init_from")] = None,
    kl_coef: Annotated[Float, opt("kl_coef")] = None,
    kl_in: Annotated[Str, opt("kl_in")] = None,
    kl_estimator: Annotated[Str, opt("kl_estimator")] = None,
    kl_target: Annotated[Float, opt("kl_target")] = None,
    kl_horizon: Annotated[Int, opt("kl_horizon")] = None,
    reward_fn: Annotated[Str, opt("reward_fn")] = None,
    num_envs: Annotated[Int, opt("num_envs")] = None,
    num_steps: Annotated[Int, opt("num_steps")] = None,
    vector_mode: Annotated[Str, opt("vector_mode")] = None,
    reward_scale: Annotated[Float, opt("reward_scale")] = None,
    norm_obs: Annotated[Bool, opt("norm_obs")] = None,
    norm_reward: Annotated[Bool, opt("norm_reward")] = None,
    env_kwarg: Annotated[
        list[str] | None,
        typer.Option(
            "--env-kwargs",
            help="KEY=VALUE for the env constructor (repeatable; VALUE is one YAML scalar).",
            rich_help_panel="Gymnasium",
        ),
    ] = None,
    log_std_init: Annotated[Float, opt("log_std_init")] = None,
    activation: Annotated[Str, opt("activation")] = None,
    ortho_init: Annotated[Bool, opt("ortho_init")] = None,
    action_mask: Annotated[Bool, opt("action_mask")] = None,
    tensorboard: Annotated[Bool, opt("tensorboard")] = None,
    show_every: Annotated[
        int,
        typer.Option(
            min=0,
            help="A greedy evaluation table every N iterations (0: never).",
            rich_help_panel=OUT,
        ),
    ] = 20,
    trace: Annotated[
        bool,
        typer.Option(
            "--trace",
            help="Show what the update saw: episodes, advantages, clipping, per-epoch losses "
            "(on stderr, also with --quiet; with --json inside the summary).",
            rich_help_panel=OUT,
        ),
    ] = False,
    trace_iterations: Annotated[
        Str,
        typer.Option(
            help="Which iterations --trace shows: numbers, first, last, all (default "
            "first,last); implies --trace.",
            rich_help_panel=OUT,
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No progress bar or tables on stderr.", rich_help_panel=OUT
        ),
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", help="One JSON summary on stdout, nothing else.", rich_help_panel=OUT
        ),
    ] = False,
) -> None:
    """Train a PPO agent and write a run directory.

    Defaults shown are Config's: a gymnasium id starts from its tuned entry
    (ppo_cli/hyperparams/gym.yaml), the transformer from its policy defaults.

    Example: ppoqa train --seed 1   |   ppoqa train --dataset examples/capitals.yaml
    """
    with handle_errors(json_output):
        given = {k: v for k, v in ctx.params.items() if k in FIELDS and v is not None}
        if reward is not None:
            from ppo_cli.envs.rewards import check_reward_name

            try:
                check_reward_name(reward, "--reward")
            except UsageError:
                raise
            except Exception as exc:  # a bad flag value is a usage error: exit 2
                raise UsageError(exc.message, exc.hint) from None  # type: ignore[attr-defined]
        if no_early_stop:  # text QA: no target accuracy; gymnasium: no target return
            given["early_stop"] = False
        if env_kwarg:
            from ppo_cli.envs.gym_envs import parse_env_kwargs

            given["env_kwargs"] = parse_env_kwargs(env_kwarg)
        if resume is not None:
            if preset is not None:
                raise UsageError(
                    "--preset cannot be combined with --resume", "the run keeps its own settings"
                )
            cfg = _resume_config(resume, run_dir, config, given)
            run_dir = resume
        else:
            from ppo_cli.config import resolve

            cfg = resolve(given, config, preset)
        # said once the run has trained (an error on the way stays the one line on stderr)
        defaults = None if cfg.is_text_qa or resume is not None else _defaults_note(cfg)
        from ppo_cli.render import qa_results_table, training_math_table
        from ppo_cli.render.progress import RichCallbacks
        from ppo_cli.trace import parse_trace_iterations
        from ppo_cli.trainer import train

        selection = parse_trace_iterations(trace_iterations) if trace or trace_iterations else None
        cb = RichCallbacks(
            err, show_every, quiet or json_output, selection, json_output, READER_GONE,
            plan=not quiet or json_output,
        )  # fmt: skip
        try:
            with reader_gone_stops_at_boundary():
                result = train(cfg, run_dir, cb, resume=resume is not None)
        finally:
            cb.close()
        summary = result.to_dict()
        if cb.plan is not None:
            summary["plan"] = cb.plan.to_dict()
        findings = []
        if cfg.is_text_qa and result.stop_reason is not None:
            from ppo_cli.doctor import diagnose

            findings = diagnose(result.run_dir)
            summary["findings"] = [f.to_dict() for f in findings]
        if defaults is not None:
            summary["defaults"] = defaults
        if selection is not None and json_output:
            summary["traces"] = cb.traces
        if json_output:
            print_json(summary)
            return
        if result.final_results:
            out.print(qa_results_table(result.final_results, "Final greedy evaluation"))
        out.print(training_math_table(summary))
        if defaults is not None:
            err.print(f"ppoqa: {defaults}", markup=False, highlight=False)
        if result.stop_message:
            err.print(f"ppoqa: {result.stop_message}", markup=False, highlight=False)
        if findings:
            from ppo_cli.doctor import render_findings

            err.print(f"ppoqa doctor found {len(findings)} problem(s):", highlight=False)
            for line in render_findings(findings):
                err.print(line, markup=False, highlight=False)
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


def _defaults_note(cfg: Config) -> str | None:
    """Which defaults a gymnasium id without a tuned entry got (from its action space)."""
    from ppo_cli.presets import defaults_note, has_tuned_entry

    if has_tuned_entry(cfg.env):
        return None
    from ppo_cli.envs.gym_envs import action_space_name

    kind = action_space_name(cfg.env, cfg.env_kwargs)
    if kind is None:  # the env cannot be created: training says why, in one line
        return None
    return defaults_note(cfg.env, kind == "Box")


def _example_question(result: Any) -> str:
    return result.final_results[0].question if result.final_results else "..."
