"""`ppoqa doctor`: the walkthrough's "common problems", found in a text-QA run's own records.

Reads only the run directory (config, metrics, the checkpoint's final answers and stop reason);
each finding is plain data: code, message, evidence, remedy. A healthy solved run has none.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ppo_cli.errors import RunError

# Thresholds, in the units the metrics use (accuracy in [0, 1], entropy in nats per token).
SAME_ANSWER_MIN = 3  # one wrong answer given to this many questions or more
FORGET_DROP = 0.2  # best greedy accuracy minus the final one
LOSS_LIMIT = 100.0  # the walkthrough's "loss > 100 or NaN"
ENTROPY_FLOOR = 0.05
NOT_LEARNING_MIN_ITERATIONS = 20
MAX_EXAMPLES = 5
LARGE_SET = 200  # questions from which a long run's remedies include a supervised warm start


@dataclass
class Finding:
    code: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    remedy: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunRecords:
    """What doctor reads from a run, already checked for shape."""

    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    results: list[dict[str, Any]]  # final greedy answers: question, target, answer, correct
    stop_reason: str | None


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def load_records(run: Path) -> RunRecords:
    """The run's records, or one RunError naming what is missing or half-written."""
    from ppo_cli.core.rundir import CHECKPOINT, load_checkpoint, read_config, read_metrics

    if not run.is_dir():
        what = "is a file, not a run directory" if run.exists() else "run directory not found"
        raise RunError(f"{run}: {what}", "pass a folder written by `ppoqa train`")
    config = read_config(run)
    if config.get("env", "text-qa") != "text-qa":
        raise RunError(
            f"{run}: is a run of {config.get('env')}; doctor reads text-QA runs",
            "pass a run trained on --env text-qa",
        )
    metrics = read_metrics(run)
    if not metrics:
        raise RunError(f"{run}: metrics.jsonl is empty", "the run never finished an iteration")
    ckpt = load_checkpoint(run)
    counters = ckpt.get("counters")
    results = counters.get("results") if isinstance(counters, dict) else None
    if not isinstance(results, list) or not all(
        isinstance(r, dict) and {"question", "target", "answer", "correct"} <= set(r)
        for r in results
    ):
        raise RunError(
            f"{run / CHECKPOINT}: holds no final greedy answers (half-written run?)",
            "let `ppoqa train` finish, or resume it with `ppoqa train --resume DIR`",
        )
    reason = counters.get("stop_reason") if isinstance(counters, dict) else None
    return RunRecords(config, metrics, results, reason if isinstance(reason, str) else None)


def diagnose(run: Path) -> list[Finding]:
    """Every finding for the run directory (what `train` prints at its end)."""
    return diagnose_records(load_records(run))


def still_wrong(rec: RunRecords) -> list[dict[str, str]]:
    """The questions the final greedy evaluation got wrong: what a user fixes next."""
    return _examples([r for r in rec.results if not r["correct"]], None)


def _examples(rows: list[dict[str, Any]], limit: int | None = MAX_EXAMPLES) -> list[dict[str, str]]:
    return [{k: r[k] for k in ("question", "answer", "target")} for r in rows[:limit]]


@dataclass
class Context(RunRecords):
    """What every rule reads, computed once: the records plus the kind of run."""

    wrong: list[dict[str, Any]]
    kinds: dict[int, str]  # id(result row) -> answer_kind of a wrong answer
    final_acc: float
    solved: bool
    reward: str
    # RLHF (--init-from, --reward-fn or a KL penalty): gold accuracy is watched, not optimized,
    # and the run starts from a trained policy; curve rules for plain runs do not apply.
    rlhf: bool
    scored_by_fn: bool  # --reward-fn replaced the dataset's reward

    def series(self, key: str) -> list[tuple[int, float]]:
        return [
            (int(m["iteration"]), float(m[key]))
            for m in self.metrics
            if _num(m.get(key)) is not None and isinstance(m.get("iteration"), int)
        ]

    @cached_property
    def evals(self) -> list[tuple[int, float]]:  # (iteration, greedy accuracy)
        return self.series("eval_accuracy")


def _context(rec: RunRecords) -> Context:
    from ppo_cli.textqa.data import tokenize
    from ppo_cli.textqa.rewards import answer_kind

    cfg, results = rec.config, rec.results
    wrong = [r for r in results if not r["correct"]]
    final_acc = sum(bool(r["correct"]) for r in results) / max(1, len(results))
    # A run with no early stop (--no-early-stop, RLHF) counts as solved at 100 %, so a
    # finished run that got every answer right is not "out of budget".
    target = _num(cfg.get("target_accuracy"))
    return Context(
        **vars(rec),
        wrong=wrong,
        kinds={id(r): answer_kind(tokenize(r["answer"]), tokenize(r["target"])) for r in wrong},
        final_acc=final_acc,
        solved=final_acc >= (1.0 if target is None else target) - 1e-9,
        reward=str(cfg.get("reward")),
        rlhf=bool(
            cfg.get("init_from") or cfg.get("reward_fn") or (_num(cfg.get("kl_coef")) or 0.0) > 0
        ),
        scored_by_fn=bool(cfg.get("reward_fn")),
    )


def _setting(ctx: Context, name: str, default: float) -> float:
    value = _num(ctx.config.get(name))
    return default if value is None else value


def _raise(ctx: Context, name: str, suggested: float, default: float) -> str:
    """'raise --ent-coef (e.g. 0.05)', or twice the run's own value when it already was that."""
    now = _setting(ctx, name, default)
    flag = f"--{name.replace('_', '-')}"
    if now >= suggested:
        return f"raise {flag} above this run's {now:g} (e.g. {2 * now:g})"
    return f"raise {flag} (e.g. {suggested:g}; this run used {now:g})"


def _lower(ctx: Context, name: str, suggested: float, default: float, whole: bool = False) -> str:
    """'lower --clip-coef (0.1)', or half the run's own value when it already was that low."""
    now = _setting(ctx, name, default)
    flag = f"--{name.replace('_', '-')}"
    if now <= suggested:
        half = max(1, int(now) // 2) if whole else now / 2
        if whole and half >= now:
            return ""
        return f"{flag} below this run's {now:g} (e.g. {half:g})"
    return f"{flag} ({suggested:g}; this run used {now:g})"


def _more_episodes(ctx: Context) -> str:
    n = ctx.metrics[0].get("episodes") if ctx.metrics else None  # per iteration
    if isinstance(n, int) and not isinstance(n, bool) and n:
        return f"--num-episodes {2 * n} (this run used {n})"
    return "--num-episodes"


def rule_same_answer(ctx: Context) -> Finding | None:
    counts = Counter(r["answer"] for r in ctx.wrong if r["answer"])
    repeated = [(a, n) for a, n in counts.most_common() if n >= SAME_ANSWER_MIN]
    if not repeated or _hacking(ctx):  # reward hacking names the cause
        return None
    answer, n = repeated[0]
    evidence = {
        "answers": [{"answer": a, "questions": k} for a, k in repeated],
        "examples": _examples([r for r in ctx.wrong if r["answer"] == answer]),
    }
    message = f'the same wrong answer "{answer}" is given to {n} questions'
    if ctx.scored_by_fn:  # the run's own function chose this answer, not a lack of exploring
        return Finding(
            "same_answer",
            message,
            evidence,
            f'the --reward-fn pays "{answer}" for questions it does not answer: check what it '
            "scores; from a supervised start (ppoqa sft, then --init-from) a KL penalty "
            "(--kl-coef 1.0) keeps the policy near the right answers",
        )
    prefix = (
        "when many answers share words (numbers, dates), --reward prefix, which pays nothing "
        "for a wrong first word, where lcs pays a generic answer for the shared words; else "
        if ctx.reward != "prefix"
        else ""
    )
    return Finding(
        "same_answer",
        message,
        evidence,
        f"premature convergence: {prefix}{_raise(ctx, 'ent_coef', 0.05, 0.03)} or "
        f"{_more_episodes(ctx)} so each question is tried more",
    )


def rule_hedging(ctx: Context) -> Finding | None:
    hedges = [r for r in ctx.wrong if ctx.kinds[id(r)] == "hedge"]
    if not hedges or ctx.scored_by_fn:  # a --reward-fn run is not paid by a named --reward
        return None
    reward = ctx.reward
    return Finding(
        "hedging",
        f"{len(hedges)} final answers hold the target's words plus others (hedging)",
        {"reward": reward, "count": len(hedges), "examples": _examples(hedges)},
        (
            "the walkthrough reward pays for any answer that contains the right words: "
            "train with --reward lcs (the default) or --reward prefix"
            if reward == "walkthrough"
            else f"reward {reward!r} still pays a hedge something: try --reward prefix "
            "or --reward exact"
            if reward not in ("prefix", "exact")
            else f"reward {reward!r} pays a hedge nothing: train longer (--iterations) or "
            f"with {_more_episodes(ctx)}"
        ),
    )


def rule_word_order(ctx: Context) -> Finding | None:
    reordered = [r for r in ctx.wrong if ctx.kinds[id(r)] == "word_order"]
    if not reordered or ctx.scored_by_fn:
        return None
    from ppo_cli.textqa.rewards import REWARDS

    reward = ctx.reward
    return Finding(
        "word_order",
        f"{len(reordered)} final answers have the right words in the wrong order",
        {"reward": reward, "count": len(reordered), "examples": _examples(reordered)},
        (
            f"reward {reward!r} pays the words in any order: train with --reward lcs "
            "(order-aware, the default) or --reward prefix"
            if reward in REWARDS and REWARDS[reward].ignores_order
            else (
                "--reward prefix pays nothing at all for the wrong order; or "
                if reward != "prefix"
                else ""
            )
            + f"train longer (--iterations) or with {_more_episodes(ctx)}"
        ),
    )


def rule_reward_hacking(ctx: Context) -> Finding | None:
    if not _hacking(ctx):
        return None
    (s0, s1), (k0, k1) = ((x[0][1], x[-1][1]) for x in (ctx.series("score"), ctx.series("kl")))
    (best_it, best), (last_it, last) = _best_and_last(ctx)
    coef = _setting(ctx, "kl_coef", 0.0)
    remedy = (
        "the policy found answers the score pays for that are wrong: add a KL penalty toward "
        "the starting policy, --kl-coef 1.0 (or --kl-coef 0.1 --kl-target 0.05 to adapt it)"
        if coef <= 0
        else f"the KL penalty was too weak to hold the policy: raise --kl-coef above this "
        f"run's {coef:g} (e.g. {max(1.0, 4 * coef):g}), or set --kl-target 0.05; also check "
        "the --reward-fn for answers it pays wrongly"
    )
    return Finding(
        "reward_hacking",
        f"the score rose from {s0:.2f} to {s1:.2f} while gold accuracy fell from "
        f"{100 * best:.0f}% (iteration {best_it}) to {100 * last:.0f}% and the KL to the "
        f"start grew from {k0:.2f} to {k1:.2f} nats per token",
        {
            "first_score": round(s0, 4),
            "final_score": round(s1, 4),
            "first_kl": round(k0, 4),
            "final_kl": round(k1, 4),
            "best_accuracy": round(best, 4),
            "final_accuracy": round(last, 4),
            "kl_coef": coef,
            "examples": _examples(ctx.wrong),
        },
        remedy,
    )


HACK_SCORE_RISE = 0.05  # proxy score, first to last iteration (score units)
HACK_KL_RISE = 0.1  # nats per token, first to last iteration


def _best_and_last(ctx: Context) -> tuple[tuple[int, float], tuple[int, float]]:
    """The best greedy evaluation (the earliest of equals) and the last: (iteration, accuracy)."""
    return max(ctx.evals, key=lambda e: (e[1], -e[0])), ctx.evals[-1]


def _hacking(ctx: Context) -> bool:
    """Gao et al. 2022 in one run: the proxy score rose, gold accuracy fell, the KL grew."""
    scores, kls = ctx.series("score"), ctx.series("kl")
    if not (ctx.rlhf and scores and kls and ctx.evals):
        return False
    (_, best), (_, last) = _best_and_last(ctx)
    return (
        best - last >= FORGET_DROP
        and scores[-1][1] - scores[0][1] >= HACK_SCORE_RISE
        and kls[-1][1] - kls[0][1] >= HACK_KL_RISE
    )


def rule_not_learning(ctx: Context) -> Finding | None:
    # RLHF runs start from a trained policy and are not scored on gold accuracy
    if ctx.rlhf or not ctx.evals or ctx.solved or len(ctx.metrics) < NOT_LEARNING_MIN_ITERATIONS:
        return None
    first = ctx.evals[0][1]
    best = max(a for _, a in ctx.evals)
    if best > max(first + 0.05, 0.2):
        return None
    train_acc = [_num(m.get("train_accuracy")) or 0.0 for m in ctx.metrics]
    return Finding(
        "not_learning",
        f"greedy accuracy stayed at {100 * best:.0f}% or less over {len(ctx.metrics)} iterations",
        {
            "first_accuracy": round(first, 4),
            "best_accuracy": round(best, 4),
            "iterations": len(ctx.metrics),
            "exact_in_rollouts": round(max(train_acc), 4),
        },
        (
            "no rollout ever earned the exact-answer reward: check the dataset's "
            "rewards (ppoqa explain-reward)"
            + ("" if ctx.config.get("answer_vocab", True) else ", use --answer-vocab")
            + f", raise {_more_episodes(ctx)}"
            if max(train_acc) == 0.0
            else f"{_raise(ctx, 'learning_rate', 0.01, 5e-3)} or {_more_episodes(ctx)}; "
            "check advantages with `ppoqa train --trace`"
        ),
    )


def rule_forgetting(ctx: Context) -> Finding | None:
    if not ctx.evals or _hacking(ctx):  # reward hacking is its own finding
        return None
    (best_it, best), (last_it, last) = _best_and_last(ctx)
    if not (best - last >= FORGET_DROP and last_it > best_it):
        return None
    lower = [_lower(ctx, "clip_coef", 0.1, 0.2), _lower(ctx, "update_epochs", 2, 4, whole=True)]
    lower = [*filter(None, lower), "--learning-rate"]
    target_kl = _num(ctx.config.get("target_kl"))
    kl = (
        "--target-kl 0.02 stops an update that moves too far"
        if target_kl is None
        else f"--target-kl below this run's {target_kl:g} (e.g. {target_kl / 2:g})"
    )
    return Finding(
        "forgetting",
        f"greedy accuracy fell from {100 * best:.0f}% (iteration {best_it}) to "
        f"{100 * last:.0f}% (iteration {last_it})",
        {
            "best_accuracy": round(best, 4),
            "best_iteration": best_it,
            "final_accuracy": round(last, 4),
            "final_iteration": last_it,
        },
        f"updates too aggressive: lower {', '.join(lower)}; {kl}",
    )


def rule_loss_exploding(ctx: Context) -> Finding | None:
    bad = [
        (m.get("iteration"), m.get("loss"))
        for m in ctx.metrics
        if _num(m.get("loss")) is None
        or not math.isfinite(float(m["loss"]))
        or abs(float(m["loss"])) > LOSS_LIMIT
    ]
    if not bad:
        return None
    it, value = bad[0]
    return Finding(
        "loss_exploding",
        f"the loss reached {value} at iteration {it}",
        {"iterations": [b[0] for b in bad[:MAX_EXAMPLES]], "first_value": value},
        f"lower {_lower(ctx, 'learning_rate', 0.001, 5e-3)} and keep --max-grad-norm at 0.5",
    )


def rule_entropy_collapse(ctx: Context) -> Finding | None:
    entropy = ctx.series("entropy")
    # Collapse means it *fell*: a run that starts below the floor (an SFT start) inherited it.
    # An RLHF run converging on what its score pays is not an exploration problem.
    if ctx.solved or ctx.rlhf or not entropy or entropy[0][1] < ENTROPY_FLOOR:
        return None
    low = [(it, e) for it, e in entropy if e < ENTROPY_FLOOR]
    if not low:
        return None
    it, ent = low[0]
    return Finding(
        "entropy_collapse",
        f"policy entropy fell to {ent:.3f} nats at iteration {it} before the run was solved",
        {
            "iteration": it,
            "entropy": round(ent, 4),
            "floor": ENTROPY_FLOOR,
            "final_accuracy": round(ctx.final_acc, 4),
        },
        f"the policy stopped exploring: {_raise(ctx, 'ent_coef', 0.05, 0.03)}",
    )


def rule_budget_exhausted(ctx: Context) -> Finding | None:
    # An RLHF run's iterations are its plan; its gold accuracy is reported, not targeted.
    if ctx.stop_reason != "budget" or ctx.solved or ctx.rlhf:
        return None
    tail = ctx.evals[-10:]
    rising = len(tail) >= 2 and tail[-1][1] > tail[0][1]
    iterations = len(ctx.metrics)
    return Finding(
        "budget_exhausted",
        f"the run used all {iterations} iterations and ended at "
        f"{100 * ctx.final_acc:.0f}% greedy accuracy" + (", still improving" if rising else ""),
        {
            "iterations": iterations,
            "final_accuracy": round(ctx.final_acc, 4),
            "still_improving": rising,
        },
        f"train longer: ppoqa train --iterations {2 * iterations} ... "
        "(or --resume the run with a larger --iterations)"
        + (
            "; or start from a supervised warm start (ppoqa sft --dataset FILE --run-dir "
            "runs/sft, then ppoqa train --init-from runs/sft), or aim lower "
            "(--target-accuracy 0.9)"
            if len(ctx.results) >= LARGE_SET
            else ""
        ),
    )


# The rules, in the order findings are reported: answers first, then curves. Each reads the
# Context and returns a Finding or None; adding a check is adding a function here.
RULES: tuple[Callable[[Context], Finding | None], ...] = (
    rule_same_answer,
    rule_hedging,
    rule_word_order,
    rule_reward_hacking,
    rule_not_learning,
    rule_forgetting,
    rule_loss_exploding,
    rule_entropy_collapse,
    rule_budget_exhausted,
)
CODES = tuple(rule.__name__.removeprefix("rule_") for rule in RULES)


def diagnose_records(rec: RunRecords) -> list[Finding]:
    """Every rule on plain records (what tests and `train` call)."""
    ctx = _context(rec)
    return [f for rule in RULES if (f := rule(ctx)) is not None]


def _example_line(r: dict[str, str]) -> str:
    return f'    "{r["question"]}" -> "{r["answer"]}" (target "{r["target"]}")'


def render_still_wrong(rows: list[dict[str, str]], total: int, limit: int = 20) -> list[str]:
    """Plain lines naming the questions still wrong (the first `limit`)."""
    if not rows:
        return []
    lines = [f"still wrong: {len(rows)} of {total} questions", *map(_example_line, rows[:limit])]
    if len(rows) > limit:
        lines.append(f"    ... and {len(rows) - limit} more (--json lists them all)")
    return lines


def render_findings(findings: list[Finding]) -> list[str]:
    """Plain lines for a terminal: one block per finding."""
    lines = []
    for f in findings:
        lines.append(f"[{f.code}] {f.message}")
        lines += map(_example_line, f.evidence.get("examples", [])[:3])
        lines.append(f"    remedy: {f.remedy}")
    return lines
