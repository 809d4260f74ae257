"""Worked numbers for `ppoqa explain-gae`, `explain-clip` and `explain-advantage`, as plain data.

Nothing here re-derives the math: it calls the functions training uses (core.gae's compute_gae
and normalize, core.ppo's ppo_loss and clipped_surrogate) on the learner's numbers, checked here
(typer parses the flags, ppo_cli.cli.explain; a JSON document on stdin is read here).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ppo_cli.core.gae import compute_gae
from ppo_cli.core.trace import normalization, public, rounded
from ppo_cli.errors import UsageError

# Teaching inputs, not a training data path: small bounds keep every result finite in float32.
MAX_STEPS = 10_000
MAX_ABS = 1e9
MIN_LOGPROB = -50.0


@dataclass
class GAERequest:
    """One trajectory to explain: time-major lists of equal length."""

    rewards: list[float]
    values: list[float]
    dones: list[bool]
    last_value: float = 0.0
    gamma: float = 0.99
    gae_lambda: float = 0.95


# The first seed's two walkthroughs ("What is 2+2?" answered "4", then answered "5").
SEED_CORRECT = GAERequest([-0.1, 10.0], [8.2, 9.8], [False, True])
SEED_WRONG = GAERequest([-0.1, -2.0], [8.2, 5.1], [False, True])
# The second seed's GAE demonstration: four ordinary steps, then a big final reward.
SEED_CARTPOLE = GAERequest([1, 1, 1, 1, 10], [5.0, 5.5, 6.0, 7.0, 9.0], [False] * 4 + [True])
EXAMPLES = {"correct": SEED_CORRECT, "wrong": SEED_WRONG, "cartpole": SEED_CARTPOLE}


def _check_number(x: float, name: str) -> float:
    if not math.isfinite(x) or abs(x) > MAX_ABS:
        raise UsageError(
            f"{name}: {x!r} is not a finite number within ±{MAX_ABS:g}",
            "use plain decimal numbers such as -0.1 or 9.8",
        )
    return float(x)


def _same_lengths(lengths: dict[str, int], hint: str) -> None:
    """One item of every list per step (or sample), or a usage error naming the lengths."""
    if len(set(lengths.values())) != 1:
        shown = ", ".join(f"{k} {v}" for k, v in lengths.items())
        raise UsageError(f"the lists have different lengths ({shown})", hint)


def check_request(req: GAERequest) -> GAERequest:
    """Equal lengths, finite numbers, gamma and lambda in [0, 1]."""
    if not req.rewards:
        raise UsageError("no rewards given", "give at least one step: --rewards 10 --values 8.2")
    if len(req.rewards) > MAX_STEPS:
        raise UsageError(f"more than {MAX_STEPS} steps", "explain a shorter trajectory")
    lengths = {"rewards": len(req.rewards), "values": len(req.values), "dones": len(req.dones)}
    _same_lengths(lengths, "give one reward, one value and one done flag per step")
    for name, xs in (("rewards", req.rewards), ("values", req.values)):
        for i, x in enumerate(xs, 1):
            _check_number(x, f"{name} item {i}")
    _check_number(req.last_value, "last value")
    for name, x in (("gamma", req.gamma), ("lambda", req.gae_lambda)):
        if not (0.0 <= x <= 1.0):  # also false for NaN
            raise UsageError(f"{name} must be within [0, 1], got {x!r}", "the default is 0.99/0.95")
    return req


_DOC_KEYS = ("rewards", "values", "dones", "last_value", "gamma", "lam", "gae_lambda")
_DOC_EXAMPLE = 'e.g. {"rewards": [-0.1, 10], "values": [8.2, 9.8], "dones": [0, 1]}'


def _json_number(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise UsageError(f"stdin: {where} ({json.dumps(x)[:40]}) is not a number", _DOC_EXAMPLE)
    try:
        return float(x)
    except OverflowError:  # a huge JSON integer
        raise UsageError(
            f"stdin: {where} is too large", f"keep numbers within ±{MAX_ABS:g}"
        ) from None


def _json_done(x: Any, where: str) -> bool:
    if isinstance(x, bool) or (isinstance(x, int | float) and x in (0, 1)):
        return bool(x)
    raise UsageError(
        f"stdin: {where} ({json.dumps(x)[:40]}) is not 0/1 or true/false", "e.g. [0, 1]"
    )


def _json_list(doc: dict[str, Any], key: str, item: Any) -> list[Any]:
    if not isinstance(doc[key], list):
        raise UsageError(f"stdin: '{key}' must be a list", _DOC_EXAMPLE)
    return [item(x, f"'{key}' item {i}") for i, x in enumerate(doc[key], 1)]


def gae_request_from_json(
    text: str,
    last_value: float | None = None,
    gamma: float | None = None,
    gae_lambda: float | None = None,
) -> GAERequest:
    """{"rewards": [...], "values": [...], "dones": [...], "last_value", "gamma", "lam"};
    options given on the command line win over the document's values."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise UsageError("stdin is not a JSON document", f"pipe {_DOC_EXAMPLE[5:]}") from None
    if not isinstance(doc, dict):
        raise UsageError("stdin: expected a JSON object", _DOC_EXAMPLE)
    unknown = [k for k in doc if k not in _DOC_KEYS]
    if unknown:
        raise UsageError(
            f"stdin: unknown key {str(unknown[0])[:40]!r}", f"known keys: {', '.join(_DOC_KEYS)}"
        )
    for key in ("rewards", "values"):
        if key not in doc:
            raise UsageError(f"stdin: '{key}' is missing", "give rewards and values per step")
    if "lam" in doc and "gae_lambda" in doc:
        raise UsageError("stdin: give 'lam' or 'gae_lambda', not both", "they are the same knob")
    if "lam" in doc:
        doc["gae_lambda"] = doc.pop("lam")  # the same knob by its short name
    rewards = _json_list(doc, "rewards", _json_number)
    values = _json_list(doc, "values", _json_number)
    no_dones = doc.get("dones") is None
    dones = [False] * len(rewards) if no_dones else _json_list(doc, "dones", _json_done)
    req = GAERequest(rewards, values, dones)
    for name, value in (("last_value", last_value), ("gamma", gamma), ("gae_lambda", gae_lambda)):
        if value is None and doc.get(name) is not None:
            value = _json_number(doc[name], f"'{name}'")
        if value is not None:
            setattr(req, name, float(value))
    return check_request(req)


def gae_steps(req: GAERequest) -> dict[str, Any]:
    """compute_gae on one trajectory, laid out per step (rows in backward order)."""
    rewards = torch.tensor(req.rewards, dtype=torch.float32)  # [T]
    values = torch.tensor(req.values, dtype=torch.float32)  # [T]
    dones = torch.tensor(req.dones, dtype=torch.float32)  # [T]
    gae = compute_gae(rewards, values, dones, req.last_value, req.gamma, req.gae_lambda)
    adv = gae.advantages
    n = adv.shape[0]
    # What flows back into step t from step t+1: gamma*lambda*(1-done_t)*A_{t+1}; A_t = delta_t
    # + carried_t holds by construction of compute_gae's loop.
    following = torch.cat([adv[1:], torch.zeros(1)])  # [T] A_{t+1}, 0 after the last step
    carried = req.gamma * req.gae_lambda * (1.0 - dones) * following
    rows = [
        {
            "t": t,
            "reward": rounded(rewards[t]),
            "value": rounded(values[t]),
            "done": bool(req.dones[t]),
            "next_value": rounded(gae.next_values[t]),
            "delta": rounded(gae.deltas[t]),
            "carried": rounded(carried[t]),
            "advantage": rounded(adv[t]),
            "return": rounded(gae.returns[t]),
        }
        for t in reversed(range(n))
    ]
    keys = ("reward", "value", "done", "next_value", "delta", "advantage", "return")
    return {
        "gamma": req.gamma,
        "lam": req.gae_lambda,
        "last_value": req.last_value,
        **{f"{key}s": [row[key] for row in reversed(rows)] for key in keys},  # in time order
        "rows": rows,
        "_advantages": adv,
    }


def explain_gae(req: GAERequest) -> dict[str, Any]:
    """One checked trajectory: per-step GAE, then the normalization ppo_update applies."""
    steps = gae_steps(req)
    norm = normalization(steps["_advantages"])
    result = public(steps)
    result["normalization"] = public(norm)
    result["normalized_advantages"] = [rounded(x) for x in norm["_normalized"]]
    return result


def explain_run(
    run: Path,
    episodes: int = 3,
    seed: int = 0,
    gamma: float | None = None,
    gae_lambda: float | None = None,
) -> dict[str, Any]:
    """Sample one training-sized batch from a trained text-QA run (seeded) and explain the
    first `episodes` of it, normalized over the whole batch as ppo_update would."""
    from ppo_cli.textqa.curriculum import balanced_questions, episodes_per_iteration
    from ppo_cli.textqa.env import TextQAVecEnv
    from ppo_cli.textqa.evaluate import load_text_run
    from ppo_cli.textqa.rollout import collect_text_episodes

    text_run = load_text_run(run)
    cfg = text_run.config
    g = cfg.gamma if gamma is None else float(gamma)
    lam = cfg.gae_lambda if gae_lambda is None else float(gae_lambda)
    task = text_run.task
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        q_idx = balanced_questions(
            task.num_questions, episodes_per_iteration(cfg.num_episodes, task.num_questions)
        )  # [N]
        ro = collect_text_episodes(text_run.policy, TextQAVecEnv(task), q_idx)
    batch, _ = ro.to_batch(g, lam)  # the training path: compute_gae over the whole batch
    norm = normalization(batch.advantages, batch.mask)
    normed = norm["_normalized"]  # [N, T]
    shown = []
    itos = text_run.task.vocab.itos
    for i in range(min(episodes, ro.question_idx.shape[0])):
        n = int(ro.mask[i].sum())
        req = GAERequest(
            rewards=[float(x) for x in ro.rewards[i, :n]],
            values=[float(x) for x in ro.values[i, :n]],
            dones=[bool(x) for x in ro.dones[i, :n]],
            gamma=g,
            gae_lambda=lam,
        )
        steps = public(gae_steps(req))
        steps["tokens"] = [itos[int(a)] for a in ro.actions[i, :n]]
        steps["question"] = task.dataset.pairs[int(ro.question_idx[i])].question
        steps["target"] = task.dataset.pairs[int(ro.question_idx[i])].answer
        steps["correct"] = bool(ro.exact[i])
        steps["total_reward"] = rounded(ro.rewards[i, :n].sum())
        steps["batch_advantages"] = [rounded(x) for x in batch.advantages[i, :n]]
        steps["normalized_advantages"] = [rounded(x) for x in normed[i, :n]]
        shown.append(steps)
    return {
        "run": str(run),
        "seed": seed,
        "gamma": g,
        "lam": lam,
        "batch_episodes": int(ro.question_idx.shape[0]),
        "batch_steps": ro.num_steps,
        "normalization": public(norm),
        "episodes": shown,
    }


@dataclass
class ClipRequest:
    old_logprobs: list[float]
    new_logprobs: list[float]
    advantages: list[float]
    clip_coef: float = 0.2


def _why(ratio: float, advantage: float, eps: float) -> str:
    """What the min does to this sample's gradient, in words."""
    if advantage == 0:
        return "zero advantage: no push either way"
    if abs(ratio - 1) <= eps:
        return "inside the band: both terms are equal and the gradient flows"
    if advantage > 0 and ratio > 1 + eps:
        return "good action already pushed past 1+ε: the clipped term caps it, no gradient"
    if advantage < 0 and ratio < 1 - eps:
        return "bad action already pushed below 1−ε: the clipped term caps it, no gradient"
    if advantage > 0:
        return (
            "good action became less likely: the min keeps ratio·A, the gradient pulls it back up"
        )
    return "bad action became more likely: the min keeps ratio·A, the gradient pushes it back down"


def explain_clip(req: ClipRequest) -> dict[str, Any]:
    """The clipped surrogate per sample and the policy loss, through ppo_loss itself."""
    from ppo_cli.core.ppo import clipped_surrogate, ppo_loss

    lengths = {
        "old log-probs": len(req.old_logprobs),
        "new log-probs": len(req.new_logprobs),
        "advantages": len(req.advantages),
    }
    if min(lengths.values()) == 0:
        raise UsageError("a list is empty", "give one old/new log-prob and advantage per sample")
    _same_lengths(lengths, "give one old log-prob, new log-prob and advantage per sample")
    for name, xs in (("old log-prob", req.old_logprobs), ("new log-prob", req.new_logprobs)):
        for i, x in enumerate(xs, 1):
            if not (MIN_LOGPROB <= x <= 0.0):
                raise UsageError(
                    f"{name} {i} = {x!r} is not a log-probability in [{MIN_LOGPROB:g}, 0]",
                    "a log-probability is log(p) for 0 < p <= 1, e.g. -0.5",
                )
    for i, x in enumerate(req.advantages, 1):
        _check_number(x, f"advantage {i}")
    old = torch.tensor(req.old_logprobs, dtype=torch.float32)  # [N]
    new = torch.tensor(req.new_logprobs, dtype=torch.float32)  # [N]
    adv = torch.tensor(req.advantages, dtype=torch.float32)  # [N]
    zeros = torch.zeros_like(adv)
    eps = req.clip_coef
    # vf_coef = ent_coef = 0: the loss is the policy loss alone.
    parts = ppo_loss(new, old, adv, zeros, zeros, zeros, zeros, torch.ones_like(adv), eps, 0.0, 0.0)
    unclipped, clipped, objective = clipped_surrogate(parts.ratio, adv, eps)
    rows = []
    for i in range(adv.shape[0]):
        r = float(parts.ratio[i])
        u, c = float(unclipped[i]), float(clipped[i])
        chosen = "equal" if u == c else ("clipped" if c < u else "unclipped")
        rows.append(
            {
                "sample": i,
                "old_logprob": rounded(old[i]),
                "new_logprob": rounded(new[i]),
                "old_prob": rounded(math.exp(float(old[i]))),
                "new_prob": rounded(math.exp(float(new[i]))),
                "ratio": rounded(r),
                "clipped_ratio": rounded(min(max(r, 1 - eps), 1 + eps)),
                "advantage": rounded(adv[i]),
                "unclipped": rounded(u),
                "clipped": rounded(c),
                "objective": rounded(objective[i]),
                "chosen": chosen,
                "outside_band": abs(r - 1) > eps,
                "why": _why(r, float(adv[i]), eps),
            }
        )
    return {
        "clip_coef": eps,
        "band": [rounded(1 - eps), rounded(1 + eps)],
        "rows": rows,
        "objective": rounded(-parts.policy_loss),
        "policy_loss": rounded(parts.policy_loss),
        "clipfrac": rounded(parts.clipfrac),
        "approx_kl": rounded(parts.approx_kl),
        "ratios": [row["ratio"] for row in rows],
    }


def seed_clip_examples(clip_coef: float = 0.2) -> list[dict[str, Any]]:
    """The seeds' clipping examples, each computed by explain_clip."""
    examples = [
        (
            "inside-band",
            "One token after a small update (first seed): log-prob -0.15 -> -0.12, "
            "normalized advantage 0.53",
            ClipRequest([-0.15], [-0.12], [0.53], clip_coef),
        ),
        (
            "small-step",
            "A good action, probability 0.3 -> 0.35 (first seed): inside the band",
            ClipRequest([math.log(0.3)], [math.log(0.35)], [5.0], clip_coef),
        ),
        (
            "large-step",
            "A good action, probability 0.3 -> 0.6 (first seed): the min takes the clipped term",
            ClipRequest([math.log(0.3)], [math.log(0.6)], [5.0], clip_coef),
        ),
        (
            "three-actions",
            "The second seed's demo: three actions, some better and some worse than expected",
            ClipRequest([-1.0, -0.5, -2.0], [-0.5, -0.3, -2.5], [1.0, -0.5, 2.0], clip_coef),
        ),
    ]
    return [{"name": n, "title": t, **explain_clip(req)} for n, t, req in examples]


def explain_advantage(
    run: Path, seed: int = 0, group_size: int = 4, questions: int = 3
) -> dict[str, Any]:
    """One seeded batch from a text-QA run, `group_size` completions for each of `questions`
    questions, and each completion's advantage under every estimator with the numbers behind it.
    REINFORCE++'s and GAE's normalization are over the shown batch; GAE reads the run's critic
    (untrained in a run without one, which the record says)."""
    from ppo_cli.textqa import estimators
    from ppo_cli.textqa.curriculum import balanced_questions
    from ppo_cli.textqa.env import TextQAVecEnv
    from ppo_cli.textqa.evaluate import load_text_run
    from ppo_cli.textqa.rollout import collect_text_episodes

    text_run = load_text_run(run)
    cfg, task = text_run.config, text_run.task
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        slots = balanced_questions(task.num_questions, min(questions, task.num_questions))
        q_idx = slots.repeat_interleave(group_size)  # [N]
        ro = collect_text_episodes(text_run.policy, TextQAVecEnv(task), q_idx)
    groups = estimators.group_ids(slots.numel(), group_size)  # [N]
    mask = ro.mask.float()
    score = (ro.rewards * mask).sum(1)  # [N] R_i
    stats = estimators.group_stats(score, groups)
    full = {
        name: estimators.compute(
            name, ro.rewards, ro.mask, groups, ro.values, ro.dones, cfg.gamma, cfg.gae_lambda
        ).advantages
        for name in estimators.NAMES
    }
    rtg = estimators.returns_to_go(ro.rewards, mask)
    real_rtg = rtg[ro.mask]
    gae_norm = normalization(full["gae"], ro.mask)
    full["gae_normalized"] = gae_norm["_normalized"]
    # the first token's advantage: the whole answer's for the group estimators
    adv = {name: a[:, 0] for name, a in full.items()}
    itos = text_run.task.vocab.itos
    rows = []
    for i in range(q_idx.numel()):
        n = int(ro.mask[i].sum())
        pair = task.dataset.pairs[int(q_idx[i])]
        words = [itos[int(a)] for a in ro.actions[i, :n]]
        rows.append(
            {
                "completion": i + 1,
                "group": int(groups[i]) + 1,
                "question": pair.question,
                "target": pair.answer,
                "answer": " ".join(w for w in words if w != "<END>"),
                "reward": rounded(score[i]),
                "group_mean": rounded(stats.mean[i]),
                "group_std": rounded(stats.std[i]),
                "loo_mean": rounded(stats.loo_mean[i]),
                "value_0": rounded(ro.values[i, 0]),
                "return_to_go_0": rounded(rtg[i, 0]),  # REINFORCE++'s G_0
                **{f"adv_{k}": rounded(v[i]) for k, v in adv.items()},
            }
        )
    zero_std = sum(1 for g in range(slots.numel()) if float(stats.std[groups == g][0]) < 1e-6)
    return {
        "run": str(run),
        "seed": seed,
        "group_size": group_size,
        "groups": int(slots.numel()),
        "trained_with": cfg.advantage,
        "critic_trained": cfg.advantage in ("gae",),
        "gamma": cfg.gamma,
        "lam": cfg.gae_lambda,
        "grpo_eps": 1e-4,
        "batch_return_mean": rounded(real_rtg.mean()),
        "batch_return_std": rounded(real_rtg.std()) if real_rtg.numel() > 1 else 0.0,
        "gae_normalization": public(gae_norm),
        "groups_with_zero_std": zero_std,
        "rows": rows,
    }
