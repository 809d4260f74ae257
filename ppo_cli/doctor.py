"""`ppoqa doctor`: the seed's "common problems", found in a text-QA run's own records.

Reads only the run directory (config.yaml, metrics.jsonl, the checkpoint's final greedy
answers and stop reason) and returns findings as plain data: a code, a one-line message, the
evidence from the records, and the remedy that applies. A healthy solved run has none.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ppo_cli.errors import RunError

CODES = (
    "same_answer",
    "hedging",
    "word_order",
    "not_learning",
    "forgetting",
    "loss_exploding",
    "entropy_collapse",
    "budget_exhausted",
)

# Thresholds, in the units the metrics use (accuracy in [0, 1], entropy in nats per token).
SAME_ANSWER_MIN = 3  # one wrong answer given to this many questions or more
FORGET_DROP = 0.2  # best greedy accuracy minus the final one
LOSS_LIMIT = 100.0  # the seed's "loss > 100 or NaN"
ENTROPY_FLOOR = 0.05
NOT_LEARNING_MIN_ITERATIONS = 20
MAX_EXAMPLES = 5


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
    from ppo_cli.rundir import CHECKPOINT, load_checkpoint, read_config, read_metrics

    if not run.is_dir():
        what = "is a file, not a run directory" if run.exists() else "run directory not found"
        raise RunError(f"{run}: {what}", "pass a folder written by `ppoqa train`")
    config = read_config(run)
    if config.get("env", "text-qa") != "text-qa":
        raise RunError(
            f"{run}: is a {config.get('env')} run; doctor reads text-QA runs",
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
    return diagnose_records(load_records(run))


def _examples(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {"question": r["question"], "answer": r["answer"], "target": r["target"]}
        for r in rows[:MAX_EXAMPLES]
    ]


def diagnose_records(rec: RunRecords) -> list[Finding]:
    """Every check on plain records (what tests and `train` call)."""
    from ppo_cli.data import tokenize
    from ppo_cli.envs.rewards import answer_kind

    cfg, metrics, results = rec.config, rec.metrics, rec.results
    reward = str(cfg.get("reward") or "seed")
    findings: list[Finding] = []
    wrong = [r for r in results if not r["correct"]]
    kinds = {id(r): answer_kind(tokenize(r["answer"]), tokenize(r["target"])) for r in wrong}
    evals = [
        (int(m["iteration"]), float(m["eval_accuracy"]))
        for m in metrics
        if _num(m.get("eval_accuracy")) is not None and isinstance(m.get("iteration"), int)
    ]
    final_acc = sum(bool(r["correct"]) for r in results) / max(1, len(results))
    target = _num(cfg.get("target_accuracy"))
    solved = target is not None and final_acc >= target

    # -- answers -------------------------------------------------------------------------
    counts = Counter(r["answer"] for r in wrong if r["answer"])
    repeated = [(a, n) for a, n in counts.most_common() if n >= SAME_ANSWER_MIN]
    if repeated:
        answer, n = repeated[0]
        findings.append(
            Finding(
                "same_answer",
                f'the same wrong answer "{answer}" is given to {n} questions',
                {
                    "answers": [{"answer": a, "questions": k} for a, k in repeated],
                    "examples": _examples([r for r in wrong if r["answer"] == answer]),
                },
                "premature convergence: when many answers share words (numbers, dates), "
                "--reward prefix, which pays nothing for a wrong first word, where lcs pays a "
                "generic answer for the shared words; else raise --ent-coef (e.g. 0.05) or "
                "--num-episodes so each question is tried more",
            )
        )
    hedges = [r for r in wrong if kinds[id(r)] == "hedge"]
    if hedges:
        findings.append(
            Finding(
                "hedging",
                f"{len(hedges)} final answers hold the target's words plus others (hedging)",
                {"reward": reward, "count": len(hedges), "examples": _examples(hedges)},
                (
                    "the seed reward pays for any answer that contains the right words: "
                    "train with --reward lcs (the default) or --reward prefix"
                    if reward == "seed"
                    else f"reward {reward!r} still pays a hedge something: try --reward prefix "
                    "or --reward exact"
                ),
            )
        )
    reordered = [r for r in wrong if kinds[id(r)] == "word_order"]
    if reordered:
        findings.append(
            Finding(
                "word_order",
                f"{len(reordered)} final answers have the right words in the wrong order",
                {"reward": reward, "count": len(reordered), "examples": _examples(reordered)},
                (
                    f"reward {reward!r} pays the words in any order: train with --reward lcs "
                    "(order-aware, the default) or --reward prefix"
                    if reward in ("seed", "f1")
                    else "--reward prefix pays nothing at all for the wrong order; or train "
                    "longer (--iterations) or with more episodes (--num-episodes)"
                ),
            )
        )

    # -- curves --------------------------------------------------------------------------
    if evals and not solved and len(metrics) >= NOT_LEARNING_MIN_ITERATIONS:
        first = evals[0][1]
        best = max(a for _, a in evals)
        train_acc = [_num(m.get("train_accuracy")) or 0.0 for m in metrics]
        if best <= max(first + 0.05, 0.2):
            findings.append(
                Finding(
                    "not_learning",
                    f"greedy accuracy stayed at {100 * best:.0f}% or less over "
                    f"{len(metrics)} iterations",
                    {
                        "first_accuracy": round(first, 4),
                        "best_accuracy": round(best, 4),
                        "iterations": len(metrics),
                        "exact_in_rollouts": round(max(train_acc), 4),
                    },
                    (
                        "no rollout ever earned the exact-answer reward: check the dataset's "
                        "rewards (ppoqa explain-reward), use --answer-vocab, raise --num-episodes"
                        if max(train_acc) == 0.0
                        else "raise --learning-rate (e.g. 0.01) or --num-episodes; check "
                        "advantages with `ppoqa train --trace`"
                    ),
                )
            )
    if evals:
        best_it, best = max(evals, key=lambda e: (e[1], -e[0]))
        last_it, last = evals[-1]
        if best - last >= FORGET_DROP and last_it > best_it:
            findings.append(
                Finding(
                    "forgetting",
                    f"greedy accuracy fell from {100 * best:.0f}% (iteration {best_it}) to "
                    f"{100 * last:.0f}% (iteration {last_it})",
                    {
                        "best_accuracy": round(best, 4),
                        "best_iteration": best_it,
                        "final_accuracy": round(last, 4),
                        "final_iteration": last_it,
                    },
                    "updates too aggressive: lower --clip-coef (0.1), --update-epochs (2) or "
                    "--learning-rate; --target-kl 0.02 stops an update that moves too far",
                )
            )
    bad = [
        (m.get("iteration"), m.get("loss"))
        for m in metrics
        if _num(m.get("loss")) is None
        or not math.isfinite(float(m["loss"]))
        or abs(float(m["loss"])) > LOSS_LIMIT
    ]
    if bad:
        it, value = bad[0]
        findings.append(
            Finding(
                "loss_exploding",
                f"the loss reached {value} at iteration {it}",
                {"iterations": [b[0] for b in bad[:MAX_EXAMPLES]], "first_value": value},
                "lower --learning-rate (e.g. 0.001) and keep --max-grad-norm at 0.5",
            )
        )
    if not solved:
        low = [
            (m["iteration"], float(m["entropy"]))
            for m in metrics
            if _num(m.get("entropy")) is not None and float(m["entropy"]) < ENTROPY_FLOOR
        ]
        if low:
            it, ent = low[0]
            findings.append(
                Finding(
                    "entropy_collapse",
                    f"policy entropy fell to {ent:.3f} nats at iteration {it} before the "
                    "run was solved",
                    {
                        "iteration": it,
                        "entropy": round(ent, 4),
                        "floor": ENTROPY_FLOOR,
                        "final_accuracy": round(final_acc, 4),
                    },
                    "the policy stopped exploring: raise --ent-coef (e.g. 0.05)",
                )
            )
    if rec.stop_reason == "budget" and not solved:
        tail = evals[-10:]
        rising = len(tail) >= 2 and tail[-1][1] > tail[0][1]
        iterations = len(metrics)
        findings.append(
            Finding(
                "budget_exhausted",
                f"the run used all {iterations} iterations and ended at "
                f"{100 * final_acc:.0f}% greedy accuracy" + (", still improving" if rising else ""),
                {
                    "iterations": iterations,
                    "final_accuracy": round(final_acc, 4),
                    "still_improving": rising,
                },
                f"train longer: ppoqa train --iterations {2 * iterations} ... "
                "(or --resume the run with a larger --iterations)",
            )
        )
    return findings


def render_findings(findings: list[Finding]) -> list[str]:
    """Plain lines for a terminal: one block per finding."""
    lines = []
    for f in findings:
        lines.append(f"[{f.code}] {f.message}")
        for ex in f.evidence.get("examples", [])[:3]:
            lines.append(f'    "{ex["question"]}" -> "{ex["answer"]}" (target "{ex["target"]}")')
        lines.append(f"    remedy: {f.remedy}")
    return lines
