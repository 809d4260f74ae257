"""One flat training config: dataclass defaults < tuned per-env file < --config YAML < flags.

Names follow the PPO paper and CleanRL so that a reader of either finds the same knobs here.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ppo_cli.errors import ConfigError, short_repr

TEXT_QA = "text-qa"


@dataclass
class Config:
    # What to train on
    env: str = TEXT_QA
    dataset: str | None = None
    seed: int = 0
    policy: str = "lstm"  # lstm | transformer (text); mlp is chosen for Box observations
    hidden_size: int = 64
    device: str = "cpu"  # cpu | cuda | auto
    threads: int = 1  # torch CPU threads; small models run fastest on one

    # Budget
    iterations: int = 150  # text-QA: PPO iterations at most
    timesteps: int = 100_000  # gymnasium: environment steps
    target_accuracy: float | None = 1.0  # text-QA: stop once greedy accuracy reaches this
    eval_every: int = 1  # text-QA: greedy evaluation every N iterations
    save_every: int = 10  # checkpoint every N iterations (0: only at the start and the end)

    # Rollout
    # text-QA: episodes generated per iteration; None = 8 per question, at least 64 (what a
    # question needs to be tried often enough grows with the number of questions)
    num_episodes: int | None = None
    num_envs: int = 8  # gymnasium: parallel environments
    num_steps: int = 128  # gymnasium: steps per environment per iteration
    vector_mode: str = "auto"  # gymnasium: auto | sync | async | vector
    reward_scale: float = 1.0  # gymnasium: rewards x this for learning (reported returns stay raw)

    # PPO
    learning_rate: float = 5e-3
    anneal_lr: bool = False
    gamma: float = 0.99
    gae_lambda: float = 0.95
    update_epochs: int = 4
    num_minibatches: int = 2
    clip_coef: float = 0.2
    clip_vloss: bool = False
    norm_adv: bool = True
    ent_coef: float = 0.03
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None

    # Text-QA rewards and episode length (None: the dataset's own or the seed's default)
    max_answer_tokens: int | None = None
    reward: str | None = None  # text-QA: a named reward (seed, exact, f1, prefix, lcs)
    reward_partial: float | None = None  # weight of the named reward's partial credit
    reward_correct: float | None = None
    reward_overlap: float | None = None
    reward_wrong: float | None = None
    step_penalty: float | None = None

    # Extensions (issue 6): curriculum over dataset levels, TensorBoard scalars
    curriculum: bool = False  # text-QA: start with the easiest level, add the next when earned
    curriculum_threshold: float = 0.8  # greedy accuracy on the active levels that adds the next
    tensorboard: bool = False  # write CleanRL-named scalars to <run dir>/tensorboard
    answer_vocab: bool = False  # text-QA: generate only answer words, never an empty answer

    # RLHF (issue 13): start from a run, stay near it (KL penalty), score with your function
    init_from: str | None = None  # text-QA: run directory whose weights start PPO (the reference)
    kl_coef: float = 0.0  # per-token penalty -kl_coef * KL(pi || pi_ref); 0: off
    kl_estimator: str = "k1"  # k1 = logp - logp_ref; k3 = (r - 1) - log r, r = p_ref / p
    kl_target: float | None = None  # adapt kl_coef toward this per-token KL (Ziegler et al. 2019)
    kl_horizon: int = 640  # episodes over which the adaptive coefficient may change by 20 %
    reward_fn: str | None = None  # FILE.py:NAME or module:NAME replacing the task score

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def is_text_qa(self) -> bool:
        return self.env == TEXT_QA


FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(Config)}

_CHOICES: dict[str, tuple[str, ...]] = {
    "policy": ("lstm", "transformer", "mlp"),
    "device": ("cpu", "cuda", "auto"),
    "vector_mode": ("auto", "sync", "async", "vector"),
    "kl_estimator": ("k1", "k3"),
}

# (low, high, low inclusive) ranges checked after merging; None means unbounded.
_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "seed": (0, 2**32 - 1, True),  # numpy's seed range
    "hidden_size": (1, 4096, True),
    "threads": (1, 256, True),
    "iterations": (1, None, True),
    "timesteps": (1, None, True),
    "target_accuracy": (0.0, 1.0, True),
    "eval_every": (1, None, True),
    "save_every": (0, None, True),
    "num_episodes": (1, 1_000_000, True),
    "num_envs": (1, 1024, True),
    "num_steps": (1, 1_000_000, True),
    "learning_rate": (0.0, 10.0, False),
    "gamma": (0.0, 1.0, True),
    "gae_lambda": (0.0, 1.0, True),
    "update_epochs": (1, 1000, True),
    "num_minibatches": (1, None, True),
    "clip_coef": (0.0, 10.0, False),
    "ent_coef": (0.0, 100.0, True),
    "vf_coef": (0.0, 100.0, True),
    "max_grad_norm": (0.0, None, False),
    "target_kl": (0.0, None, False),
    "reward_scale": (0.0, None, False),
    "max_answer_tokens": (1, 64, True),
    "reward_correct": (-1e6, 1e6, True),
    "reward_overlap": (-1e6, 1e6, True),
    "reward_partial": (-1e6, 1e6, True),
    "reward_wrong": (-1e6, 1e6, True),
    "step_penalty": (0.0, 1e6, True),
    "curriculum_threshold": (0.0, 1.0, False),
    "kl_coef": (0.0, 1e6, True),
    "kl_target": (0.0, None, False),
    "kl_horizon": (1, None, True),
}


def _label(source: str, name: str) -> str:
    """'--learning-rate' for a flag, 'file.yaml: learning_rate' for a config file."""
    return f"--{name.replace('_', '-')}" if source == "option" else f"{source}: '{name}'"


def _coerce(name: str, value: Any, source: str) -> Any:
    """Check one value against the field's declared type; YAML and flags both come through here."""
    ftype = FIELD_TYPES[name]
    optional = "None" in ftype
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{_label(source, name)} cannot be empty", f"give a value for {name}")
    base = ftype.replace(" | None", "")
    bad = ConfigError(
        f"{_label(source, name)} must be {'a' if base != 'int' else 'a whole'} "
        f"{ {'int': 'number', 'float': 'number', 'bool': 'true/false', 'str': 'text'}[base] }, "
        f"got {short_repr(value)}",
        f"see `ppoqa train --help` for {name}",
    )
    if base == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if isinstance(value, float) and not value.is_integer():
            raise bad
        return int(value)
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        value = float(value)
        if not math.isfinite(value):
            raise bad
        return value
    if not isinstance(value, str) or not value:
        raise bad
    return value


def validate(cfg: Config, source: str = "config") -> Config:
    """Range and choice checks, so a bad value stops before any training starts."""
    for name, choices in _CHOICES.items():
        if getattr(cfg, name) not in choices:
            raise ConfigError(
                f"{_label(source, name)} must be one of {', '.join(choices)}, "
                f"got {short_repr(getattr(cfg, name))}",
                f"pick one of {', '.join(choices)}",
            )
    for name, (low, high, low_incl) in _RANGES.items():
        value = getattr(cfg, name)
        if value is None:
            continue
        too_low = low is not None and (value < low if low_incl else value <= low)
        too_high = high is not None and value > high
        if too_low or too_high:
            lo = "" if low is None else (f">= {low}" if low_incl else f"> {low}")
            hi = "" if high is None else f"<= {high}"
            rng = " and ".join(x for x in (lo, hi) if x)
            raise ConfigError(
                f"{_label(source, name)} must be {rng}, got {short_repr(value)}",
                f"choose {name} {rng}",
            )
    return cfg


def apply_overrides(cfg: Config, overrides: dict[str, Any], source: str) -> Config:
    """Return a copy of cfg with overrides applied; unknown keys get close-match suggestions."""
    names = set(FIELD_TYPES)
    values = {}
    for raw_key, value in overrides.items():
        key = str(raw_key).replace("-", "_")
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "see `ppoqa train --help`"
            raise ConfigError(f"{source}: unknown setting {short_repr(str(raw_key))}", hint)
        values[key] = _coerce(key, value, source)
    return dataclasses.replace(cfg, **values)


MAX_CONFIG_BYTES = 1_000_000


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of settings (not yet applied)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, not a config file", "pass a .yaml file")
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found", "check the path given to --config")
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror})", "check the permissions") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{p}: larger than 1 MB, not a config file", "check the path")
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte {exc.start})", "save the config as UTF-8 YAML"
        ) from exc
    except yaml.YAMLError as exc:
        from ppo_cli.data import describe_yaml_error

        raise ConfigError(
            f"{p}:{describe_yaml_error(exc)}",
            "a config is a mapping such as  learning_rate: 0.003",
        ) from exc
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConfigError(
            f"{p}: not valid YAML ({short_repr(str(exc))})", "a config is a YAML mapping"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{p}: top level is not a mapping",
            "a config is a mapping such as  learning_rate: 0.003",
        )
    return data


TUNED_FILE = "hyperparams/gym.yaml"


def tuned_settings(env: str) -> dict[str, Any]:
    """Shipped per-env settings (like rl-zoo3): the file's `default` entry, then the entry for
    env. Text QA has none: its defaults are the dataclass's."""
    if env == TEXT_QA:
        return {}
    from importlib import resources

    text = resources.files("ppo_cli").joinpath(TUNED_FILE).read_text(encoding="utf-8")
    table = yaml.safe_load(text) or {}
    return {**(table.get("default") or {}), **(table.get(env) or {})}


def base_config(env: str = TEXT_QA) -> Config:
    """Config defaults < tuned settings for env: what `ppoqa train --env ENV` starts from."""
    return apply_overrides(Config(env=env), tuned_settings(env), TUNED_FILE)


def config_to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
