"""Reward over-optimization in miniature (Gao et al. 2022): SFT, then PPO on a flawed proxy
reward with and without a KL penalty; prints one JSON document.

    python benchmarks/rlhf_paris.py                           # seeds 0-2, kl_coef 0 0.1 0.3 1
    python benchmarks/rlhf_paris.py --seeds 5 --coefs 0 1.0 --policy transformer

Every run is the whole CLI command a user types (a subprocess of this checkout's ppoqa):

    ppoqa sft --seed S --run-dir D/sft
    ppoqa train --init-from D/sft --reward-fn examples/proxy_paris.py:is_paris \
        --kl-coef C --iterations 40 --no-early-stop --seed S

and is read back from its run directory: the proxy score (before the KL penalty), the mean
per-token KL to the SFT reference, and the real (gold) greedy accuracy, per iteration.
The issue's bar is checked per seed: with kl_coef 0 most greedy answers are "Paris"; with
kl_coef 1 the final kl is at most a third of the unpenalized run's and the gold accuracy at
least 40 points higher. Also reported: the wall and CPU seconds of the whole `ppoqa sft`
command (the <= 5 s bar; wall time depends on the machine's load, recorded next to it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROXY = f"{ROOT / 'examples' / 'proxy_paris.py'}:is_paris"


def ppoqa(*args: str) -> tuple[dict[str, Any], float, float]:
    """Run one ppoqa command with --json; returns (document, wall s, CPU s of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "ppo_cli", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"ppoqa {' '.join(args)} failed: {proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout), wall, cpu


def read_metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    ap.add_argument("--coefs", type=float, nargs="+", default=[0.0, 0.1, 0.3, 1.0])
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--estimator", default="k1", choices=["k1", "k3"])
    ap.add_argument("--policy", default="lstm")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument(
        "--train-args",
        default="",
        help='more `ppoqa train` flags for every PPO run, e.g. "--kl-in loss" or '
        '"--advantage grpo"',
    )
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    sft_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ppoqa-rlhf-") as tmp:
        for seed in range(args.seeds):
            sft_dir = Path(tmp) / f"sft-s{seed}"
            load = os.getloadavg()[0]
            doc, wall, cpu = ppoqa(
                "sft", "--seed", str(seed), "--policy", args.policy, "--run-dir", str(sft_dir)
            )
            sft_rows.append(
                {
                    "seed": seed,
                    "accuracy": doc["final_accuracy"],
                    "command_wall_s": round(wall, 2),
                    "command_cpu_s": round(cpu, 2),
                    "training_wall_s": doc["wall_seconds"],
                    "loadavg_1min": load,
                }
            )
            for coef in args.coefs:
                run = Path(tmp) / f"ppo-s{seed}-c{coef:g}"
                doc, wall, cpu = ppoqa(
                    "train",
                    "--init-from",
                    str(sft_dir),
                    "--reward-fn",
                    PROXY,
                    "--kl-coef",
                    str(coef),
                    "--kl-estimator",
                    args.estimator,
                    "--iterations",
                    str(args.iterations),
                    "--no-early-stop",
                    "--seed",
                    str(seed),
                    "--run-dir",
                    str(run),
                    *args.train_args.split(),
                )
                m = read_metrics(run)
                answers = [r["answer"] for r in doc["final_results"]]
                gold = [r["eval_accuracy"] for r in m]
                rows.append(
                    {
                        "seed": seed,
                        "kl_coef": coef,
                        "final_score": round(m[-1]["score"], 4),
                        "final_kl": round(m[-1]["kl"], 4),
                        "final_gold_accuracy": m[-1]["eval_accuracy"],
                        "paris_share": sum(a == "Paris" for a in answers) / len(answers),
                        "greedy_answers": answers,
                        # the curves of Gao et al.: proxy and KL per iteration, gold as well
                        "score_curve": [round(r["score"], 3) for r in m],
                        "kl_curve": [round(r["kl"], 4) for r in m],
                        "gold_curve": gold,
                        "wall_s": round(wall, 2),
                        "cpu_s": round(cpu, 2),
                    }
                )
                print(
                    f"seed {seed} kl_coef {coef:g}: score {rows[-1]['final_score']:.3f} "
                    f"kl {rows[-1]['final_kl']:.4f} gold {rows[-1]['final_gold_accuracy']:.0%}",
                    file=sys.stderr,
                )
    summary = []
    for coef in args.coefs:
        mine = [r for r in rows if r["kl_coef"] == coef]
        summary.append(
            {
                "kl_coef": coef,
                "mean_final_score": round(mean(r["final_score"] for r in mine), 4),
                "mean_final_kl": round(mean(r["final_kl"] for r in mine), 4),
                "mean_final_gold_accuracy": round(mean(r["final_gold_accuracy"] for r in mine), 3),
                "mean_paris_share": round(mean(r["paris_share"] for r in mine), 3),
            }
        )
    bar = []
    if 0.0 in args.coefs and 1.0 in args.coefs:
        for seed in range(args.seeds):
            off = next(r for r in rows if r["seed"] == seed and r["kl_coef"] == 0.0)
            on = next(r for r in rows if r["seed"] == seed and r["kl_coef"] == 1.0)
            bar.append(
                {
                    "seed": seed,
                    "hacked_without_kl": off["paris_share"] > 0.5,
                    "kl_at_most_a_third": on["final_kl"] <= off["final_kl"] / 3,
                    # in whole points: 0.6 - 0.2 is 0.3999... in floating point
                    "gold_40_points_higher": round(
                        100 * (on["final_gold_accuracy"] - off["final_gold_accuracy"])
                    )
                    >= 40,
                }
            )
    doc = {
        "benchmark": "rlhf_paris",
        "policy": args.policy,
        "iterations": args.iterations,
        "estimator": args.estimator,
        "train_args": args.train_args,
        "seeds": args.seeds,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "sft": sft_rows,
        "summary": summary,
        "bar": bar,
        "bar_met_on_every_seed": bool(bar)
        and all(all(v for k, v in b.items() if k != "seed") for b in bar),
        "runs": rows,
    }
    text = json.dumps(doc)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(text)
    return doc


if __name__ == "__main__":
    main()
