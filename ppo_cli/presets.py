"""Named bundles of settings: per-policy defaults and the `--preset` choices.

Resolution order, later wins:

    Config defaults < policy defaults < --preset < --config YAML < explicit flags

Policy defaults exist because one set of PPO settings does not suit every network: the
Transformer needs a lower learning rate and a larger entropy bonus than the LSTM to reach the
built-in set's 100 % on every seed (benchmarks/qa_seeds.py). The presets are the seed's
"fast / balanced / quality" configurations re-tuned for this PPO; README "Extensions" has the
measured numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ppo_cli.config import TEXT_QA, Config, apply_overrides, load_config_file
from ppo_cli.config import base_config as env_base_config
from ppo_cli.errors import ConfigError

# Settings that differ from the Config defaults for one policy kind (text QA).
POLICY_DEFAULTS: dict[str, dict[str, Any]] = {
    "lstm": {},
    "transformer": {"learning_rate": 3e-3, "ent_coef": 0.05, "target_kl": 0.05},
}

# Each preset: settings for every policy ("all"), then per-policy refinements on top.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # A larger step size and a short iteration budget: a run never takes long, and fails
    # more often (the seed's "fast": few iterations, higher learning rate).
    "fast": {
        "all": {"learning_rate": 1e-2, "iterations": 40},
        "transformer": {"learning_rate": 5e-3, "iterations": 60},
    },
    # The defaults (the Config values for the LSTM, POLICY_DEFAULTS for the others).
    "balanced": {"all": {}},
    # Four times the episodes per iteration, five times the entropy bonus to keep exploring,
    # answer-vocabulary decoding and a long budget: for datasets with many questions or a large
    # vocabulary (examples/general_knowledge.yaml: 3/3 seeds reach 95 %, 2/3 without
    # answer_vocab; README "Extensions").
    "quality": {
        "all": {"num_episodes": 256, "ent_coef": 0.05, "answer_vocab": True, "iterations": 2000},
    },
}

PRESET_NAMES = tuple(PRESETS)


def policy_defaults(policy: str) -> dict[str, Any]:
    return dict(POLICY_DEFAULTS.get(policy, {}))


def preset_settings(name: str, policy: str) -> dict[str, Any]:
    """The settings a preset sets for this policy kind."""
    if name not in PRESETS:
        raise ConfigError(
            f"--preset must be one of {', '.join(PRESET_NAMES)}, got {name!r}",
            f"pick one of {', '.join(PRESET_NAMES)}",
        )
    layers = PRESETS[name]
    return {**layers.get("all", {}), **layers.get(policy, {})}


def _pick(key: str, *sources: dict[str, Any], default: Any) -> Any:
    """The value the highest-priority source gives for key (sources listed highest first)."""
    for src in sources:
        for k, v in src.items():
            if str(k).replace("-", "_") == key and v is not None:
                return v
    return default


def base_config(
    config_file: str | Path | None = None,
    preset: str | None = None,
    flags: dict[str, Any] | None = None,
) -> Config:
    """Defaults, policy defaults, the preset and the --config file applied in order.

    `flags` is only read to learn which policy and env the user chose (they decide the policy
    defaults); the caller applies the flags themselves last, so it can report a bad flag as a
    usage error and a bad file as a config error.
    """
    flags = flags or {}
    file_values = load_config_file(config_file) if config_file is not None else {}
    env = _pick("env", flags, file_values, default=TEXT_QA)
    policy = _pick("policy", flags, file_values, default=Config.policy)
    cfg = env_base_config(env) if isinstance(env, str) else Config()
    if env == TEXT_QA:
        cfg = apply_overrides(cfg, policy_defaults(str(policy)), f"{policy} defaults")
    if preset is not None:
        if env != TEXT_QA:
            raise ConfigError(
                f"--preset {preset} is for text QA, not {env}",
                "drop --preset; gymnasium runs take --timesteps, --num-envs, ...",
            )
        cfg = apply_overrides(cfg, preset_settings(preset, str(policy)), f"preset {preset}")
    if file_values:
        cfg = apply_overrides(cfg, file_values, str(config_file))
    return cfg


def resolve(
    flags: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
    preset: str | None = None,
) -> Config:
    """The full order in one call (for benchmarks and library users). A flag given as None
    sets None (e.g. target_kl=None); leave a key out to keep the lower layers' value."""
    flags = dict(flags or {})
    cfg = base_config(config_file, preset, flags)
    return apply_overrides(cfg, flags, "option")
