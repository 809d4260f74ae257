"""Options written once: the settings options (type, help, panel and shown default from their
Config field, so `--help` cannot disagree with the code), the training options `train` and
`sweep` share, and the value checks that make a bad flag a typer usage error (exit 2).

Typer reads a command's options from its signature, and Python has no way to spread one list
of parameters into two functions: `shares` adds the shared options to a command's own, and the
command receives them in its `**settings`. A flag added to TRAINING is a flag of both commands.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ppo_cli.cli.common import BadValue
from ppo_cli.cli.help import complete_from, env_ids
from ppo_cli.config import CHOICES, FIELD_TYPES, FIELDS, REWARD_CHOICES
from ppo_cli.presets import PRESET_NAMES

RUN, QA, GYM, OUT = "Run", "Text QA", "Gymnasium", "Output"


def option(kind: Any, help: str, *flags: str, **more: Any) -> Any:
    """A command's own option, as the annotation typer reads: Annotated[kind, typer.Option]."""
    return Annotated[kind, typer.Option(*flags, help=help, **more)]


# the options most commands take, written once
RunDir = option(Path | None, "Run directory (default: the newest under ./runs/).", "--run")
JsonFlag = option(bool, "Print one JSON object on stdout.", "--json")

# TAB completion of the settings that take one of a few values, and of --env
COMPLETIONS = {name: complete_from(values) for name, values in CHOICES.items()} | {
    "reward": complete_from(REWARD_CHOICES),
    "kl_in": complete_from(("reward", "loss")),
    "env": complete_from(env_ids),
}
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def bounded(
    low: float, high: float | None = None, hint: str = "", exclusive: bool = False
) -> Callable:
    """A typer callback refusing a number outside [low, high] ((low, high) if exclusive; NaN
    too) in one line that names the flag and the value."""

    def check(value: float | None) -> float | None:
        if value is None or (
            not math.isnan(value)
            and (value > low or (value == low and not exclusive))
            and (high is None or value < high or (value == high and not exclusive))
        ):
            return value
        if high is None:
            raise BadValue(f"must be >= {low}, got {value}", hint)
        ends = "(exclusive)" if exclusive else "(inclusive)"
        raise BadValue(f"must be between {low} and {high} {ends}, got {value}", hint)

    return check


def one_of(
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]], hint: str = ""
) -> dict[str, Any]:
    """Option arguments for a value from `choices` (or a function giving them, imported only
    when a value is given or completed): TAB offers them, anything else is refused."""

    def check(value: str | None) -> str | None:
        known = choices() if callable(choices) and value is not None else choices
        if value is not None and value not in known:
            raise BadValue(f"must be one of {', '.join(known)}, got {value!r}", hint)  # type: ignore[arg-type]
        return value

    return {"callback": check, "autocompletion": complete_from(choices)}


def reward_names(value: str | list[str] | None) -> str | list[str] | None:
    """The typer callback of --reward: every name given is a reward that exists (exit 2 with
    the choices and a close match otherwise); the rewards are imported only when one is."""
    from ppo_cli.errors import PpoqaError, UsageError

    for name in [value] if isinstance(value, str) else value or []:
        from ppo_cli.textqa.rewards import check_reward_name

        try:
            check_reward_name(name, "--reward")
        except PpoqaError as exc:
            raise UsageError(exc.message, exc.hint) from None
    return value


def _param(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    kind = inspect.Parameter.KEYWORD_ONLY
    return inspect.Parameter(name, kind, default=default, annotation=annotation)


def _option(name: str, kind: Any, *flags: str, default: Any = None, **more: Any) -> Any:
    """A shared option that is not a Config field."""
    return _param(name, Annotated[kind, typer.Option(*flags, **more)], default)


def setting(name: str, *flags: str, default: Any = None, **more: Any) -> inspect.Parameter:
    """Config field `name` as an option of the field's type, help and panel from its definition;
    None (not given) by default, so that config files and presets below the flags keep their
    say. The help states the field's default, or `default` where a command has another."""
    f = FIELDS[name]
    flag = f"--{name.replace('_', '-')}"
    if FIELD_TYPES[name] == "bool":
        flags = (f"{flag}/--no-{name.replace('_', '-')}",)
    shown = f.default if default is None else default
    shown = {True: "on", False: "off"}.get(shown) if isinstance(shown, bool) else shown
    more.setdefault("autocompletion", COMPLETIONS.get(name))
    option = typer.Option(
        *(flags or (flag,)),
        help=f.metadata["help"] + ("" if shown is None else f" \\[default: {shown}]"),
        rich_help_panel=f.metadata["panel"],
        show_default=False,  # the help states it
        **more,
    )
    kind = _TYPES[FIELD_TYPES[name].removesuffix(" | None")]
    return _param(name, Annotated[kind | None, option], default)


def settings(names: str) -> list[inspect.Parameter]:
    return [setting(name) for name in names.split()]


TRAINING: tuple[inspect.Parameter, ...] = (
    *settings("env dataset seed policy hidden_size iterations stall_iterations timesteps"),
    *settings("target_accuracy target_return"),
    _option(
        "no_early_stop",
        bool,
        "--no-early-stop",
        default=False,
        help="Run all iterations (text QA) or timesteps (gymnasium): no early stop.",
        rich_help_panel=QA,
    ),
    *settings("eval_every save_every"),
    _option(
        "preset",
        str | None,
        help=f"Settings bundle: {', '.join(PRESET_NAMES)} (balanced = defaults); "
        "--config and flags override it.",
        rich_help_panel=QA,
        autocompletion=complete_from(PRESET_NAMES),
    ),
    _option(
        "config", Path | None, help="YAML file of settings; flags override it.", rich_help_panel=RUN
    ),
    *settings("device threads"),
    setting("learning_rate", "--learning-rate", "--lr"),
    *settings("anneal_lr gamma gae_lambda update_epochs num_minibatches clip_coef clip_vloss"),
    *settings("norm_adv norm_adv_minibatch ent_coef vf_coef max_grad_norm target_kl"),
    *settings("num_episodes max_answer_tokens"),
    setting("reward", callback=reward_names),
    *settings("reward_partial advantage group_size"),
    *settings("loss_agg focus_unsolved curriculum curriculum_threshold answer_vocab"),
    *settings("answer_positions answer_memory probes init_from kl_coef kl_in kl_estimator"),
    *settings("kl_target kl_horizon reward_fn num_envs num_steps vector_mode reward_scale"),
    *settings("norm_obs norm_reward"),
    _option(
        "env_kwarg",
        list[str] | None,
        "--env-kwargs",
        help="KEY=VALUE for the env constructor (repeatable; VALUE is one YAML scalar).",
        rich_help_panel=GYM,
    ),
    *settings("log_std_init activation ortho_init action_mask tensorboard"),
)


Command = TypeVar("Command", bound=Callable[..., Any])


def shares(*shared: inspect.Parameter, first: bool = True) -> Callable[[Command], Command]:
    """Give a command the shared options too, before its own (first) or after them."""

    def add(command: Command) -> Command:
        own = inspect.signature(command, eval_str=True).parameters.values()
        ctx = [p for p in own if p.annotation is typer.Context]
        mine = [
            p.replace(kind=p.KEYWORD_ONLY)
            for p in own
            if p.kind is not p.VAR_KEYWORD and p.annotation is not typer.Context
        ]
        params = ctx + (list(shared) + mine if first else mine + list(shared))
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return add


def given_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The Config values the training options typed on the command line give: --no-early-stop
    is early_stop False (no target accuracy, no target return), the --env-kwargs items the
    env_kwargs mapping."""
    given = {k: v for k, v in values.items() if k in FIELDS and v is not None}
    if values.get("no_early_stop"):
        given["early_stop"] = False
    if values.get("env_kwarg"):
        from ppo_cli.gym.envs import parse_env_kwargs

        given["env_kwargs"] = parse_env_kwargs(values["env_kwarg"])
    return given
