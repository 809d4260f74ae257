"""The advantage estimators with their documented settings, measured with whole CLI commands;
prints one JSON document.

    python benchmarks/estimators.py bar     # solved seeds: built-in set and capitals30
    python benchmarks/estimators.py cost    # seconds per iteration, critic or not
    python benchmarks/estimators.py critic  # the value head's cost on identical batches

bar: `ppoqa train --advantage NAME --seed S [--dataset D] --quiet --json` for seeds 0..N-1
and each estimator; a seed counts as solved when the run stops with stop_reason "solved".

cost: `ppoqa train --advantage NAME --iterations K --no-early-stop --eval-every K` on one
dataset, several seeds; the seconds of iterations 2..K (from metrics.jsonl's wall_seconds, the
first iteration's warm-up left out) divided by K-1, and the process's peak RSS (/usr/bin/time).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ESTIMATORS = ("gae", "grpo", "dr_grpo", "rloo", "reinforce_pp")
PPOQA = [sys.executable, "-m", "ppo_cli"]


def train(args: list[str], run_dir: Path) -> tuple[dict, int | None, float]:
    """One whole `ppoqa train` command: its JSON summary, peak RSS in KB and wall seconds."""
    cmd = [*PPOQA, "train", *args, "--run-dir", str(run_dir), "--quiet", "--json"]
    rss_file = run_dir.parent / f"{run_dir.name}.rss"
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if timer:
        cmd = [timer, "-f", "%M", "-o", str(rss_file), *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if not proc.stdout.strip():  # killed from outside: say so rather than stop the benchmark
        return {"error": f"no output, exit {proc.returncode}: {proc.stderr[-300:]}"}, None, wall
    rss = int(rss_file.read_text().split()[-1]) if timer and rss_file.exists() else None
    return json.loads(proc.stdout), rss, wall


def bar(seeds: int, datasets: list[str | None], names: tuple[str, ...] = ESTIMATORS) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in datasets:
            name = Path(dataset).stem if dataset else "builtin"
            for est in names:
                rows = []
                for seed in range(seeds):
                    args = ["--advantage", est, "--seed", str(seed)]
                    if dataset:
                        args += ["--dataset", dataset]
                    doc, rss, wall = train(args, Path(tmp) / f"{name}-{est}-{seed}")
                    print(name, est, seed, doc.get("stop_reason"), file=sys.stderr, flush=True)
                    rows.append(
                        {
                            "seed": seed,
                            "solved": doc.get("stop_reason") == "solved",
                            "final_accuracy": doc.get("final_accuracy"),
                            "iterations": doc.get("iterations"),
                            "episodes": doc.get("episodes"),
                            "train_seconds": doc.get("wall_seconds"),
                            "command_seconds": round(wall, 2),
                        }
                    )
                out.setdefault(name, {})[est] = {
                    "command": f"ppoqa train --advantage {est} --seed S"
                    + (f" --dataset {dataset}" if dataset else ""),
                    "solved": sum(r["solved"] for r in rows),
                    "seeds": seeds,
                    "median_episodes": statistics.median(r["episodes"] for r in rows),
                    "median_train_seconds": statistics.median(r["train_seconds"] for r in rows),
                    "runs": rows,
                }
    return out


def cost(seeds: int, dataset: str, iterations: int) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        # gae with groups of 8 too: the same sampling as grpo, so the difference is the critic
        variants = [(e, ["--advantage", e]) for e in ESTIMATORS]
        variants.insert(1, ("gae_group8", ["--advantage", "gae", "--group-size", "8"]))
        for est, flags in variants:
            per_iter, rss_all = [], []
            for seed in range(seeds):
                run = Path(tmp) / f"{est}-{seed}"
                args = [*flags, "--seed", str(seed), "--dataset", dataset]
                args += ["--iterations", str(iterations), "--no-early-stop"]
                args += ["--eval-every", str(iterations), "--stall-iterations", "0"]
                _, rss, _ = train(args, run)
                recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
                # iterations 2..K-1: the last one evaluates, the first warms up
                span = recs[-2]["wall_seconds"] - recs[0]["wall_seconds"]
                per_iter.append(span / (len(recs) - 2))
                if rss is not None:
                    rss_all.append(rss)
            out[est] = {
                "seconds_per_iteration": round(statistics.median(per_iter), 4),
                "seconds_per_iteration_runs": [round(x, 4) for x in per_iter],
                "peak_rss_mb": round(statistics.median(rss_all) / 1024, 1) if rss_all else None,
            }
    base = out["gae"]["seconds_per_iteration"]
    for est in out:
        out[est]["vs_gae"] = round(out[est]["seconds_per_iteration"] / base, 3)
    return {
        "command": f"ppoqa train --advantage NAME --dataset {dataset} --iterations {iterations} "
        f"--no-early-stop --eval-every {iterations} --stall-iterations 0",
        "estimators": out,
    }


def critic_cost(dataset: str, repeats: int) -> dict:
    """The value head's own cost, on identical batches: the same network, seed and rollout,
    one iteration's collection and update timed with the critic on (gae) and off (the
    critic-free estimators); medians over `repeats` alternating trials, in this process."""
    import copy

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ppo_cli.config import resolve
    from ppo_cli.core.ppo import UpdateSettings, ppo_update
    from ppo_cli.core.trainer import build_optimizer, seed_everything
    from ppo_cli.textqa.rollout import collect_text_episodes
    from ppo_cli.textqa.task import TextQATask

    cfg = resolve({"dataset": dataset})
    seed_everything(0, 1)
    task = TextQATask(cfg, None)
    base = task.build()
    from ppo_cli.core.session import LoopState

    task.start(LoopState())
    q_idx = torch.arange(task.qa.num_questions).repeat_interleave(8)  # 240 completions
    times: dict[str, dict[str, list[float]]] = {}
    for trial in range(repeats):
        for critic in (True, False) if trial % 2 == 0 else (False, True):
            policy = copy.deepcopy(base)
            policy.use_critic = critic
            opt = build_optimizer(policy, cfg.learning_rate, False)
            torch.manual_seed(trial)
            t0 = time.perf_counter()
            ro = collect_text_episodes(policy, task.venv, q_idx)
            t1 = time.perf_counter()
            batch, _ = ro.to_batch(cfg.gamma, cfg.gae_lambda)
            settings = UpdateSettings.from_config(cfg)
            settings.use_critic = critic
            ppo_update(policy, opt, batch, settings)
            t2 = time.perf_counter()
            key = "with_critic" if critic else "without_critic"
            times.setdefault(key, {"rollout": [], "update": []})
            times[key]["rollout"].append(t1 - t0)
            times[key]["update"].append(t2 - t1)
    out = {
        k: {part: round(1000 * statistics.median(v), 2) for part, v in d.items()}
        for k, d in times.items()
    }
    for d in out.values():
        d["total"] = round(d["rollout"] + d["update"], 2)
    saved = 1 - out["without_critic"]["total"] / out["with_critic"]["total"]
    return {
        "what": f"ms per iteration (median of {repeats}), {dataset}, 240 completions, "
        "identical batches, 1 thread",
        **out,
        "saved_share": round(saved, 3),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("bar", "cost", "critic"))
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--dataset", action="append", default=None, help="repeatable; builtin")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--estimators", default=",".join(ESTIMATORS))
    args = ap.parse_args(argv)
    names = tuple(args.estimators.split(","))
    if args.what == "bar":
        datasets = [None if d == "builtin" else d for d in args.dataset or ["builtin"]]
        if not args.dataset:
            datasets.append("examples/capitals30.yaml")
        doc = bar(args.seeds, datasets, names)
    elif args.what == "critic":
        doc = critic_cost((args.dataset or ["examples/capitals30.yaml"])[0], args.repeats)
    else:
        doc = cost(args.seeds, (args.dataset or ["examples/capitals30.yaml"])[0], args.iterations)
    print(json.dumps(doc, indent=1))
    return doc


if __name__ == "__main__":
    main()
