"""Data only: per-policy defaults, the `--preset` choices and the tuned per-env file;
config.resolve() applies them in its one precedence chain (README "Extensions" has the presets'
measured numbers)."""

from __future__ import annotations

from typing import Any

from ppo_cli.errors import UsageError

# Settings that differ from the Config defaults for one policy kind (text QA).
POLICY_DEFAULTS: dict[str, dict[str, Any]] = {
    "lstm": {},
    # a lower learning rate and a larger entropy bonus than the LSTM reach the built-in set's
    # 100 % on every seed (benchmarks/qa_seeds.py), measured with two minibatches per epoch
    "transformer": dict(learning_rate=3e-3, ent_coef=0.05, target_kl=0.05, num_minibatches=2),
}

# Each advantage estimator's documented settings (docs/what-the-critic-buys.md), applied above
# the policy defaults so that `--advantage NAME` alone is enough; --preset, --config and flags
# override them. `kl_in` takes effect only for a run with a reference (--init-from or
# --kl-coef > 0). The critic-free estimators bring their own normalization, so the batch-wide
# --norm-adv of PPO is off for them.
ESTIMATOR_DEFAULTS: dict[str, dict[str, Any]] = {
    # PPO-RLHF as TRL's PPOTrainer and OpenRLHF run it: learned critic, KL in the reward
    "gae": {"group_size": 1, "kl_in": "reward", "norm_adv": True, "loss_agg": "token"},
    # DeepSeekMath's GRPO as TRL's GRPOTrainer: G completions, z-score per group, k3 KL term
    # in the loss (beta), each completion's loss averaged over its own tokens
    "grpo": {"group_size": 8, "kl_in": "loss", "norm_adv": False, "loss_agg": "sequence"},
    # Dr. GRPO: no std division, and the token sum over a constant length (no length bias).
    # Its advantages are in reward units (about 5 x GRPO's here), so the entropy bonus must
    # grow with them to keep the same weight: at 0.03 it solved capitals30 on 6 of 10 seeds,
    # at 0.2 on 10 of 10 (benchmarks/results/estimators_bar*.json).
    "dr_grpo": dict(group_size=8, kl_in="loss", norm_adv=False, loss_agg="constant", ent_coef=0.2),
    # RLOO: k = 4 completions (Ahmadian et al.'s main setting), KL in the reward as TRL had it
    "rloo": {"group_size": 4, "kl_in": "reward", "norm_adv": False, "loss_agg": "token"},
    # REINFORCE++: one completion per question, per-token KL in the reward, batch-normalized
    # returns (inside the estimator), token-level loss as OpenRLHF
    "reinforce_pp": {"group_size": 1, "kl_in": "reward", "norm_adv": False, "loss_agg": "token"},
}
ESTIMATOR_ALIASES = {"group": "grpo"}  # the first release's name for GRPO-style advantages


def estimator_defaults(name: str) -> dict[str, Any]:
    return dict(ESTIMATOR_DEFAULTS.get(ESTIMATOR_ALIASES.get(name, name), {}))


# Each preset: settings for every policy ("all"), then per-policy refinements on top.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # A larger step size and a short iteration budget: a run never takes long, fails more often.
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
        "all": {"num_episodes": 256, "ent_coef": 0.05, "answer_vocab": True, "iterations": 2000}
    },
}

PRESET_NAMES = tuple(PRESETS)


def preset_settings(name: str, policy: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise UsageError(
            f"--preset must be one of {', '.join(PRESET_NAMES)}, got {name!r}",
            f"pick one of {', '.join(PRESET_NAMES)}",
        )
    return {**PRESETS[name].get("all", {}), **PRESETS[name].get(policy, {})}


TUNED_FILE = "hyperparams/gym.yaml"
# The file's entries that are not gymnasium ids: what an id without an entry starts from.
DEFAULT_ENTRIES = ("default", "default_continuous")


def _tuned_table() -> dict[str, Any]:
    from importlib import resources

    import yaml

    text = resources.files("ppo_cli").joinpath(TUNED_FILE).read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def has_tuned_entry(env: str) -> bool:
    return env not in DEFAULT_ENTRIES and env in _tuned_table()


def tuned_settings(env: str, continuous: bool = False) -> dict[str, Any]:
    """Shipped per-env settings (like rl-zoo3): the file's `default` entry, then the entry for
    env (a gymnasium id); an id without an entry whose actions are continuous (a Box) gets
    `default_continuous` instead (CleanRL's ppo_continuous_action.py settings)."""
    table = _tuned_table()
    own = table.get(env) if env not in DEFAULT_ENTRIES else None
    if own is None and continuous:
        own = table.get("default_continuous")
    return {**(table.get("default") or {}), **(own or {})}


def defaults_note(env: str, continuous: bool) -> str:
    """The one line `train` says about an id without a tuned entry: which defaults it got
    (read from the file, so the line cannot drift from what the run uses)."""
    e = tuned_settings(env, continuous)
    normalized = " observations and rewards normalized," if e.get("norm_obs") else ""
    script = "ppo_continuous_action.py" if continuous else "ppo.py"
    return (
        f"{env} has no tuned entry: {'continuous' if continuous else 'discrete'}-action defaults "
        f"(CleanRL's {script}: {e['num_envs']} env{'s' * (e['num_envs'] > 1)} x "
        f"{e['num_steps']} steps, {e['update_epochs']} epochs of {e['num_minibatches']} "
        f"minibatches, lr {e['learning_rate']:g}{' annealed' if e.get('anneal_lr') else ''},"
        f"{normalized} {e['timesteps']:,} steps)"
    )
