"""One flat training config: every field with its help and the kinds of run it applies to,
its checks, and resolve(), the one precedence chain.

Names follow the PPO paper and CleanRL so that a reader of either finds the same knobs here."""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ppo_cli.errors import ConfigError, UsageError, short_repr
from ppo_cli.files import read_regular

TEXT_QA = "text-qa"
TEXT, GYM, BOTH = (TEXT_QA,), ("gym",), (TEXT_QA, "gym")  # the kinds of run


def setting(
    default: Any, help: str, kinds: tuple[str, ...] = BOTH, panel: str | None = None
) -> Any:
    """A Config field with its --help text, the kinds of run it applies to (a flag for another
    kind is a usage error) and the help panel `ppoqa train --help` shows it in."""
    panel = panel or {TEXT: "Text QA", GYM: "Gymnasium"}.get(kinds, "PPO")
    return field(default=default, metadata={"help": help, "kinds": kinds, "panel": panel})


R = "Run"


@dataclass
class Config:
    # What to train on, and where
    env: str = setting(TEXT_QA, "text-qa or a gymnasium id such as CartPole-v1.", panel=R)
    dataset: str | None = setting(
        None, "QA dataset YAML file (default: the built-in five questions).", TEXT, R
    )
    seed: int = setting(0, "Random seed. Same seed, same machine -> same metrics.", panel=R)
    policy: str = setting(
        "lstm", "Network: lstm or transformer (text QA); mlp (gymnasium, its default).", panel=R
    )
    hidden_size: int = setting(64, "Width of the network.", panel=R)
    device: str = setting("cpu", "cpu, cuda or auto (gymnasium; text QA uses the CPU).", panel=R)
    threads: int = setting(1, "torch CPU threads (1 is fastest for small networks).", panel=R)
    # None: grows with the dataset (ppo_cli.textqa.budget); config.yaml records the value used
    iterations: int | None = setting(
        None,
        "PPO iterations at most (default: 3x the estimate from the answer words, at least "
        "150, said before training; 40 for --init-from/--reward-fn runs).",
        TEXT,
    )
    stall_iterations: int | None = setting(
        None,
        "Stop when greedy accuracy has not gained for N iterations (default 40; on 200+ "
        "questions a gain is 1% of them; 0: never; off for --init-from/--reward-fn runs).",
        TEXT,
    )
    timesteps: int = setting(100_000, "Environment steps to train for (tuned per env).", GYM)
    target_accuracy: float | None = setting(
        1.0,
        "Stop once greedy accuracy reaches this (off for --init-from/--reward-fn runs "
        "unless given).",
        TEXT,
    )
    target_return: float | None = setting(
        None,
        "Stop once the greedy evaluation's mean return reaches this (default: the env's "
        "reward_threshold, when it has one).",
        GYM,
    )
    early_stop: bool = setting(
        True, "Stop when greedy evaluation reaches --target-return (--no-early-stop: never).", GYM
    )
    eval_every: int = setting(1, "Greedy evaluation every N iterations.", TEXT)
    save_every: int = setting(10, "Checkpoint every N iterations (0: start and end).", panel=R)

    # Rollout. Text QA: None = 4 episodes per question, at least 64 (what a question needs to
    # be tried often enough grows with the number of questions)
    num_episodes: int | None = setting(
        None, "Episodes per iteration (default: 4 per question, at least 64).", TEXT
    )
    num_envs: int = setting(8, "Parallel environments.", GYM)
    num_steps: int = setting(128, "Steps per environment per iteration.", GYM)
    vector_mode: str = setting("auto", "auto, sync, async (processes) or vector.", GYM)
    reward_scale: float = setting(
        1.0, "Multiply rewards by this for learning only (returns stay raw).", GYM
    )
    norm_obs: bool = setting(
        False, "Normalize observations by running mean/std, clip ±10 (saved with the model).", GYM
    )
    norm_reward: bool = setting(
        False, "Scale rewards by the running std of the discounted return (clip ±10).", GYM
    )
    env_kwargs: dict | None = setting(
        None, "Keywords for the env constructor (--env-kwargs KEY=VALUE, repeatable).", GYM
    )
    log_std_init: float = setting(0.0, "Box actions: initial log std of the Gaussian.", GYM)
    activation: str = setting("tanh", "MLP hidden activation: tanh (CleanRL) or relu.", GYM)
    action_mask: bool = setting(
        False, "Discrete actions: never sample what the env's info['action_mask'] rules out.", GYM
    )
    ortho_init: bool = setting(
        True, "Orthogonal init of the MLP (CleanRL); off: torch's default (rl-zoo3 MuJoCo).", GYM
    )

    # PPO
    learning_rate: float = setting(5e-3, "Adam learning rate.")
    anneal_lr: bool = setting(False, "Decay the learning rate linearly to 0.")
    gamma: float = setting(0.99, "Discount factor.")
    gae_lambda: float = setting(0.95, "GAE lambda.")
    update_epochs: int = setting(4, "Passes over each batch.")
    num_minibatches: int = setting(4, "Minibatches per epoch.")
    clip_coef: float = setting(0.2, "PPO clipping epsilon.")
    clip_vloss: bool = setting(False, "Clip the value loss too.")
    norm_adv: bool = setting(True, "Normalize advantages.")
    norm_adv_minibatch: bool = setting(
        False, "Normalize advantages per minibatch (CleanRL, SB3), not once per batch."
    )
    ent_coef: float = setting(0.03, "Entropy bonus coefficient.")
    # 0.1 for text QA: the LSTM trunk is shared by actor and critic, and at 0.5 the value
    # loss's gradient dominated the clipped total; gymnasium's `default` entry sets 0.5.
    vf_coef: float = setting(0.1, "Value loss coefficient.")
    max_grad_norm: float = setting(0.5, "Gradient norm clip.")
    target_kl: float | None = setting(None, "Stop an update's epochs once approx_kl exceeds this.")

    # Text-QA rewards and episode length (None: the dataset's own or the default)
    max_answer_tokens: int | None = setting(
        None, "Answer length limit (default: the dataset's, else 4).", TEXT
    )
    reward: str | None = setting(
        None,
        "Named reward: lcs (default), strict, prefix, f1, exact or walkthrough (the original "
        "walkthrough's overlap, which pays for hedging; alias seed); `ppoqa explain-reward` "
        "shows what each pays.",
        TEXT,
    )
    reward_partial: float | None = setting(
        None, "Weight of the reward's partial credit (default 4: half right earns -2 + 2).", TEXT
    )
    reward_correct: float | None = setting(None, "Reward of an exact answer.", TEXT)
    reward_overlap: float | None = setting(None, "Seed reward: weight of the overlap.", TEXT)
    reward_wrong: float | None = setting(None, "Reward of a wrong answer.", TEXT)
    step_penalty: float | None = setting(None, "Penalty per generated token.", TEXT)

    # Extensions: curriculum over dataset levels, TensorBoard scalars
    curriculum: bool = setting(
        False, "Start with the dataset's easiest level, add the next when earned.", TEXT
    )
    curriculum_threshold: float = setting(
        0.8, "Greedy accuracy on the active levels that adds the next level.", TEXT
    )
    tensorboard: bool = setting(
        False, "TensorBoard scalars (CleanRL names) in <run dir>/tensorboard.", panel="Output"
    )
    # invalid-action masking: on by default, it is what learns users' datasets
    answer_vocab: bool = setting(
        True, "Generate only words of the dataset's answers, never an empty answer.", TEXT
    )
    focus_unsolved: float = setting(
        0.5,
        "Share of each iteration's episodes spent on the questions the last greedy evaluation "
        "got wrong (0: every question equally; off with --reward-fn).",
        TEXT,
    )
    answer_positions: bool = setting(
        True,
        "With --answer-vocab: answer token k only from words some answer has as its token k.",
        TEXT,
    )
    answer_memory: bool = setting(
        True,
        "Keep each question's best answer sampled so far and train on it every iteration it "
        "beats the new samples (MAPO's memory; off with --reward-fn).",
        TEXT,
    )
    probes: int = setting(
        8,
        "Per question the greedy policy gets wrong, forward-only episodes per iteration that "
        "start with a first word not tried yet; what they find enters the memory (0: off).",
        TEXT,
    )
    advantage: str = setting(
        "gae",
        "Advantage estimator: gae (PPO's learned critic), grpo, dr_grpo, rloo or reinforce_pp "
        "(critic-free; `group` = grpo). Each brings its own defaults (group size, KL place, "
        "normalization; docs/what-the-critic-buys.md).",
        TEXT,
    )
    group_size: int = setting(
        1,
        "Completions per question per iteration (--num-episodes is rounded up to a multiple; "
        "grpo/dr_grpo default 8, rloo 4).",
        TEXT,
    )
    loss_agg: str = setting(
        "token",
        "Policy loss average: token (every token alike, DAPO), sequence (every completion "
        "alike, GRPO) or constant (token sum / longest possible answer, Dr. GRPO).",
        TEXT,
    )

    # RLHF: start from a run, stay near it (KL penalty), score with your function
    init_from: str | None = setting(
        None,
        "Start from this run's weights (ppoqa sft or train); its policy, frozen, is the KL "
        "reference. Dataset and network default to that run's.",
        TEXT,
    )
    kl_coef: float = setting(
        0.0, "KL coefficient: per-token reward -C * KL_t, or C * k3 in the loss (0: off).", TEXT
    )
    kl_in: str | None = setting(
        None,
        "Where the KL to the reference goes: reward (PPO-RLHF, per-token penalty) or loss "
        "(GRPO: k3 term, TRL's beta); default: the estimator's, when there is a reference.",
        TEXT,
    )
    kl_estimator: str = setting(
        "k1", "k1 = logp - logp_ref, or k3 = (r-1) - log r, r = p_ref/p (never < 0).", TEXT
    )
    kl_target: float | None = setting(
        None, "Adapt --kl-coef toward this mean per-token KL (Ziegler et al. 2019).", TEXT
    )
    kl_horizon: int = setting(
        640, "With --kl-target: episodes over which the coefficient may change by 20%.", TEXT
    )
    reward_fn: str | None = setting(
        None,
        "FILE.py:NAME or module:NAME, a function (question, answer, target) -> float that "
        "replaces the task score (e.g. examples/proxy_paris.py:is_paris). Its prints go to "
        "stderr; a call may take PPOQA_USER_CODE_TIMEOUT seconds (default 60).",
        TEXT,
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def is_text_qa(self) -> bool:
        return self.env == TEXT_QA


FIELDS = {f.name: f for f in fields(Config)}
FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(Config)}

CHOICES: dict[str, tuple[str, ...]] = {
    "policy": ("lstm", "transformer", "mlp"),
    "device": ("cpu", "cuda", "auto"),
    "vector_mode": ("auto", "sync", "async", "vector"),
    "kl_estimator": ("k1", "k3"),
    "advantage": ("gae", "grpo", "dr_grpo", "rloo", "reinforce_pp", "group"),
    "loss_agg": ("token", "sequence", "constant"),
    "activation": ("tanh", "relu"),
}

# The named rewards (ppo_cli.textqa.rewards.REWARDS, which imports torch): offered by TAB
# completion of --reward, which must not pay for torch; a test keeps the two lists equal.
REWARD_CHOICES = ("lcs", "strict", "prefix", "f1", "exact", "walkthrough")

# (low, high, low inclusive) ranges checked after merging; high None means unbounded. Settings
# that share a range share an entry.
_RANGES: dict[str, tuple[float, float | None, bool]] = {
    "seed": (0, 2**32 - 1, True),  # numpy's seed range
    "threads": (1, 256, True),
    "num_envs": (1, 1024, True),
    "update_epochs": (1, 1000, True),
    "log_std_init": (-20.0, 5.0, True),
    "max_answer_tokens": (1, 64, True),
    **dict.fromkeys(("step_penalty", "kl_coef"), (0.0, 1e6, True)),
    "curriculum_threshold": (0.0, 1.0, False),
    "focus_unsolved": (0.0, 0.95, True),
    "probes": (0, 1024, True),
    **dict.fromkeys(("hidden_size", "group_size"), (1, 4096, True)),
    **dict.fromkeys(("stall_iterations", "save_every"), (0, None, True)),
    **dict.fromkeys(("num_episodes", "num_steps"), (1, 1_000_000, True)),
    **dict.fromkeys(("learning_rate", "clip_coef"), (0.0, 10.0, False)),
    **dict.fromkeys(("ent_coef", "vf_coef"), (0.0, 100.0, True)),
    **dict.fromkeys(("target_accuracy", "gamma", "gae_lambda"), (0.0, 1.0, True)),
    **dict.fromkeys(
        ("iterations", "timesteps", "eval_every", "num_minibatches", "kl_horizon"), (1, None, True)
    ),
    **dict.fromkeys(
        ("max_grad_norm", "target_kl", "reward_scale", "kl_target"), (0.0, None, False)
    ),
    **dict.fromkeys(
        ("reward_correct", "reward_overlap", "reward_partial", "reward_wrong"), (-1e6, 1e6, True)
    ),
}


def _label(source: str, name: str) -> str:
    """'--learning-rate' for a flag, 'file.yaml: learning_rate' for a config file."""
    return f"--{name.replace('_', '-')}" if source == "option" else f"{source}: '{name}'"


def _coerce(name: str, value: Any, source: str) -> Any:
    """Check one value against the field's declared type; YAML and flags both come through here."""
    ftype = FIELD_TYPES[name]
    if value is None:
        if "None" in ftype:
            return None
        raise ConfigError(f"{_label(source, name)} cannot be empty", f"give a value for {name}")
    base = ftype.replace(" | None", "")
    if base == "dict":
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(
                f"{_label(source, name)} must be a mapping of names to values, "
                f"got {short_repr(value)}",
                "e.g. env_kwargs: {map_name: 8x8}",
            )
        return dict(value)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(value, {"bool": bool, "str": str}.get(base, ())) and value != "":
        return value
    if base == "int" and number and (isinstance(value, int) or value.is_integer()):
        return int(value)
    if base == "float" and number and math.isfinite(float(value)):
        return float(value)
    raise ConfigError(
        f"{_label(source, name)} must be {'a' if base != 'int' else 'a whole'} "
        f"{ {'int': 'number', 'float': 'number', 'bool': 'true/false', 'str': 'text'}[base] }, "
        f"got {short_repr(value)}",
        f"see `ppoqa train --help` for {name}",
    )


def validate(cfg: Config, source: str = "config", whole: bool = True) -> Config:
    """Range and choice checks, so a bad value stops before any training starts; whole=False
    checks each value alone (a part of the settings, not yet the run's combination)."""
    for name, choices in CHOICES.items():
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
        if (value < low if low_incl else value <= low) or (high is not None and value > high):
            lo = f">= {low}" if low_incl else f"> {low}"
            rng = lo if high is None else f"{lo} and <= {high}"
            raise ConfigError(
                f"{_label(source, name)} must be {rng}, got {short_repr(value)}",
                f"choose {name} {rng}",
            )
    if cfg.env != TEXT_QA:
        _check_gym_batch(cfg, source)
    elif whole:  # the estimator's needs depend on settings other layers may give
        _check_estimator(cfg, source)
    if whole:
        _check_kind(cfg)
    return cfg


def _check_kind(cfg: Config) -> None:
    """What one kind of run cannot do with a value the other kind can."""
    if cfg.env == TEXT_QA:
        if cfg.policy == "mlp":
            raise ConfigError(
                "--policy mlp is for gymnasium environments", "use lstm or transformer"
            )
        if cfg.device == "cuda":
            # Honest about it rather than silently ignoring the flag: the text-QA networks are
            # tiny and step one token at a time, where a GPU's launch overhead outweighs it.
            raise ConfigError(
                "--device cuda: text QA trains on the CPU only",
                "drop --device (auto means cpu here)",
            )
        if cfg.kl_target is not None and cfg.kl_coef <= 0:
            raise ConfigError(
                "--kl-target adapts --kl-coef multiplicatively: it needs a starting --kl-coef > 0",
                "e.g. --kl-coef 0.2 --kl-target 0.05",
            )
        return
    if cfg.policy != "mlp":
        raise ConfigError(
            f"--policy {cfg.policy} is a text-QA network; gymnasium environments use mlp",
            "drop --policy (mlp is picked for Box observations) or pass --policy mlp",
        )
    rlhf_flags = {
        "--init-from": cfg.init_from is not None,
        "--kl-coef": cfg.kl_coef > 0,
        "--kl-target": cfg.kl_target is not None,
        "--reward-fn": cfg.reward_fn is not None,
    }
    for flag, given in rlhf_flags.items():
        if given:  # RLHF here scores generated text against a frozen text policy
            raise ConfigError(
                f"{flag} is for text QA, not {cfg.env}", f"drop {flag} for gymnasium runs"
            )


def _check_estimator(cfg: Config, source: str) -> None:
    """The estimator's needs: groups of two or more completions for the group baselines, a
    reference for a KL term in the loss."""
    if cfg.kl_in not in (None, "reward", "loss"):
        raise ConfigError(
            f"{_label(source, 'kl_in')} must be one of reward, loss, got {short_repr(cfg.kl_in)}",
            "pick reward (PPO-RLHF) or loss (GRPO)",
        )
    if cfg.advantage in ("grpo", "dr_grpo", "rloo") and cfg.group_size < 2:  # group estimators
        raise ConfigError(
            f"--advantage {cfg.advantage} compares each completion with the others of its "
            f"question, but {_label(source, 'group_size')} {cfg.group_size} leaves none",
            "use --group-size 2 or more (or leave it out for the estimator's own), or "
            "--advantage gae / reinforce_pp",
        )
    if cfg.kl_in == "loss" and not has_reference(cfg):
        raise ConfigError(
            f"{_label(source, 'kl_in')} loss puts a KL term toward a reference policy in the "
            "loss, but this run has none",
            "add --init-from RUN and --kl-coef C (TRL's beta), or drop --kl-in",
        )


def _check_gym_batch(cfg: Config, source: str) -> None:
    """The batch arithmetic of a gymnasium iteration, checked before any folder exists: with
    one step per env, an iteration can hold only the reset steps that follow finished
    episodes (no transition to learn from), and a batch smaller than --num-minibatches cannot
    be split into that many minibatches."""
    batch = cfg.num_envs * cfg.num_steps
    if cfg.num_steps < 2:
        raise ConfigError(
            f"{_label(source, 'num_steps')} must be at least 2 for gymnasium runs, got "
            f"{cfg.num_steps}: a 1-step rollout can be all reset steps, leaving nothing to learn",
            "use --num-steps 2 or more (CleanRL uses 128)",
        )
    if batch < cfg.num_minibatches:
        raise ConfigError(
            f"a batch of num_envs x num_steps = {cfg.num_envs} x {cfg.num_steps} = {batch} "
            f"steps cannot be split into num_minibatches = {cfg.num_minibatches} minibatches",
            f"raise --num-steps or --num-envs, or pass --num-minibatches {max(1, batch)} or less",
        )


def apply_overrides(cfg: Config, overrides: dict[str, Any], source: str) -> Config:
    """Return a copy of cfg with overrides applied; unknown keys get close-match suggestions."""
    values = {}
    for raw_key, value in overrides.items():
        key = str(raw_key).replace("-", "_")
        if key not in FIELDS:
            close = difflib.get_close_matches(key, sorted(FIELDS), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "see `ppoqa train --help`"
            raise ConfigError(f"{source}: unknown setting {short_repr(str(raw_key))}", hint)
        value = _coerce(key, value, source)
        below = getattr(cfg, key)
        if isinstance(value, dict) and isinstance(below, dict):
            # a mapping (env_kwargs: an entry's, then a file's, then a flag's) adds to the keys
            # below it; naming the same key replaces that key only
            value = {**below, **value}
        values[key] = value
    return dataclasses.replace(cfg, **values)


def load_config_file(path: str | Path) -> dict[str, Any]:
    import yaml  # here, not at the top: `ppoqa --help` reads this module

    from ppo_cli.yamlio import DuplicateKey, describe_yaml_error, load_yaml_unique

    p = Path(path)
    raw = read_regular(
        p,
        "config file",
        1_000_000,
        error=ConfigError,
        missing_hint="check the path given to --config",
        size_message=f"{p}: larger than 1 MB, not a config file",
        size_hint="check the path",
    )
    try:
        data = load_yaml_unique(raw.decode("utf-8"))
    except DuplicateKey as dup:
        raise ConfigError(
            f"{p}: line {dup.line}: {short_repr(dup.key)} is set twice (first on line "
            f"{dup.first}); YAML would keep only the last",
            "keep one of them",
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte {exc.start})", "save the config as UTF-8 YAML"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{p}:{describe_yaml_error(exc)}", "a config is a mapping such as  learning_rate: 0.003"
        ) from exc
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConfigError(
            f"{p}: not valid YAML ({short_repr(str(exc))})", "a config is a YAML mapping"
        ) from exc
    if not isinstance(data, dict | None):
        raise ConfigError(
            f"{p}: top level is not a mapping",
            "a config is a mapping such as  learning_rate: 0.003",
        )
    return data or {}


def _pick(key: str, *sources: dict[str, Any], default: Any) -> Any:
    """The value the highest-priority source gives for key (sources listed highest first)."""
    for src in sources:
        for k, v in src.items():
            if str(k).replace("-", "_") == key and v is not None:
                return v
    return default


def _network_of(run: Path) -> dict[str, Any]:
    """--init-from: the network (kind, width, answer vocabulary) defaults to the starting
    run's; a flag that asks for another one is refused by the trainer."""
    from ppo_cli.core.rundir import CONFIG, read_config

    if not (run / CONFIG).is_file():
        return {}  # the trainer reports a missing or foreign run with its own message
    theirs = read_config(run)
    return {k: theirs[k] for k in ("policy", "hidden_size", "answer_vocab") if k in theirs}


# An RLHF run (--init-from or --reward-fn) runs its iterations: early stopping on gold accuracy
# would end an SFT start at iteration 1 (the stall rule watches it too). 40 iterations: the
# README's RLHF walkthrough and benchmarks/rlhf_paris.py (proxy hack within 5, KL run by 20).
RLHF_DEFAULTS: dict[str, Any] = {"target_accuracy": None, "stall_iterations": 0, "iterations": 40}
RLHF_FLAGS = ("init_from", "reward_fn")


def resolve(
    flags: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
    preset: str | None = None,
    *,
    base: dict[str, Any] | None = None,
    source: str = "config",
) -> Config:
    """THE precedence chain of ppoqa's settings, later wins:

        Config defaults < the gymnasium id's tuned entry (presets.TUNED_FILE)
        < policy defaults < RLHF_DEFAULTS (with --init-from or --reward-fn, for the keys no
        --preset, file or flag names) < --preset < --config file < flags

    or, resuming a run (base: its config.yaml, named `source`), that file < flags; with
    --init-from, that run's network counts as flags not given. A bad value
    in a file is the file's error (exit 1); a bad flag value, or a flag that does not apply to
    the chosen kind of run, is a usage error (exit 2). A flag given as None sets None
    (target_kl=None); leave a key out to keep the lower layers' value."""
    from ppo_cli import presets

    flags = {str(k).replace("-", "_"): v for k, v in (flags or {}).items()}
    file_values = load_config_file(config_file) if base is None and config_file is not None else {}
    lower_env = _pick("env", base or file_values, default=TEXT_QA)
    if (
        flags.get("early_stop") is False
        and _pick("env", flags, default=TEXT_QA) == lower_env == TEXT_QA
    ):
        # --no-early-stop: for text QA that is no target accuracy (its own early-stop rule)
        flags = {k: v for k, v in flags.items() if k != "early_stop"} | {"target_accuracy": None}
    typed = list(flags)  # what the user gave, blamed before what --init-from brings along
    if base is None and flags.get("init_from") is not None:  # the starting run's network
        flags = _network_of(Path(flags["init_from"])) | flags
    if base is not None:
        cfg = validate(apply_overrides(Config(), base, source), source)
    else:
        env = _pick("env", flags, file_values, default=TEXT_QA)
        policy = str(_pick("policy", flags, file_values, default=Config.policy))
        cfg = Config()
        if env == TEXT_QA:
            cfg = apply_overrides(
                cfg, presets.POLICY_DEFAULTS.get(policy, {}), f"{policy} defaults"
            )
            advantage = _pick("advantage", flags, file_values, default=Config.advantage)
            if isinstance(advantage, str):
                advantage = presets.ESTIMATOR_ALIASES.get(advantage, advantage)
                flags = _renamed(flags, "advantage", advantage)
                file_values = _renamed(file_values, "advantage", advantage)
                estimator = presets.estimator_defaults(advantage)
                estimator.pop("kl_in", None)  # placed below, once the reference is known
                cfg = apply_overrides(cfg, estimator, f"{advantage} defaults")
        elif isinstance(env, str):
            continuous = False
            if not presets.has_tuned_entry(env):  # defaults from the env's action space
                from ppo_cli.gym.envs import has_continuous_actions  # the one probe of a wing

                kwargs = _pick("env_kwargs", flags, file_values, default=None)
                continuous = has_continuous_actions(env, kwargs)
            tuned = presets.tuned_settings(env, continuous)
            cfg = apply_overrides(Config(env=env), tuned, presets.TUNED_FILE)
        preset_values: dict[str, Any] = {}
        if preset is not None:
            if env != TEXT_QA:
                raise UsageError(
                    f"--preset {preset} is for text QA, not {env}",
                    "drop --preset; gymnasium runs take --timesteps, --num-envs, ...",
                )
            preset_values = presets.preset_settings(preset, policy)
            cfg = apply_overrides(cfg, preset_values, f"preset {preset}")
        chosen = set(flags) | {str(k).replace("-", "_") for k in file_values} | set(preset_values)
        if any(_pick(k, flags, file_values, default=None) is not None for k in RLHF_FLAGS):
            # RLHF: how long to run is the plan, not gold accuracy (the SFT start already has
            # it; a --reward-fn run never sees it). Any layer that names a key keeps its value.
            rlhf = {k: v for k, v in RLHF_DEFAULTS.items() if k not in chosen}
            cfg = apply_overrides(cfg, rlhf, "RLHF defaults")
        if file_values:
            cfg = apply_overrides(cfg, file_values, str(config_file))
            # A bad value the file sets (and no flag replaces) is the file's error, named as
            # `file: 'key'`, not blamed on a flag the user never typed.
            kept = {str(k).replace("-", "_") for k in file_values} - set(flags)
            validate(Config(**{k: getattr(cfg, k) for k in kept}), str(config_file), whole=False)
    env = flags.get("env", cfg.env)
    kind, other = (TEXT_QA, "gymnasium ids") if env == TEXT_QA else (GYM[0], "text QA")
    for key in typed + [k for k in flags if k not in typed]:
        if key in FIELDS and kind not in FIELDS[key].metadata["kinds"]:
            raise UsageError(
                f"--{key.replace('_', '-')} is for {other}, not {env} runs (it does not apply)",
                "drop it; the panels of `ppoqa train --help` say what each kind of run reads",
            )
    try:
        cfg = validate(apply_overrides(cfg, flags, "option"), "option")
    except ConfigError as exc:  # a bad flag value is a usage error: exit 2
        raise UsageError(exc.message, exc.hint) from None
    if cfg.is_text_qa:
        if cfg.kl_in is None and has_reference(cfg):
            # the estimator's place for the KL, now that there is a reference to measure it to
            place = presets.estimator_defaults(cfg.advantage).get("kl_in", "reward")
            cfg = dataclasses.replace(cfg, kl_in=place)
    elif cfg.early_stop and cfg.target_return is None:
        # Early stop as text QA stops when solved: the env's own reward_threshold (gymnasium's
        # spec) unless --target-return names another; config.yaml records the one used.
        from ppo_cli.gym.envs import env_reward_threshold

        cfg = dataclasses.replace(cfg, target_return=env_reward_threshold(cfg.env))
    return cfg


def _renamed(values: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """values with key (spelled with - or _) set to value, if it is there at all."""
    return {k: (value if str(k).replace("-", "_") == key else v) for k, v in values.items()}


def has_reference(cfg: Config) -> bool:
    """A run has a frozen reference policy to measure the KL to when it starts from another
    run or pays a KL coefficient (the fresh network is then its own reference)."""
    return cfg.init_from is not None or cfg.kl_coef > 0


def config_to_yaml(cfg: Config) -> str:
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
