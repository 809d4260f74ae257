"""Default `ppoqa train --env CartPole-v1` over seeds: steps, time, SPS, greedy eval return.

    python benchmarks/cartpole.py                       # seeds 0-2, in-process, tuned defaults
    python benchmarks/cartpole.py --seeds 10            # seeds 0-9
    python benchmarks/cartpole.py --cli                 # also time the whole command per seed
    python benchmarks/cartpole.py --set num_envs=8 --set update_epochs=10
    python benchmarks/cartpole.py --env Acrobot-v1    # another id's tuned entry (no bar)

One JSON line per seed on stderr as it finishes, then one JSON document on stdout. The bar
(issue 3): eval mean return >= 475 over 20 greedy episodes within 100,000 steps on 3 of 3 seeds,
in <= 10 s of wall time. `cpu_seconds` (process CPU time) is printed beside wall time because
wall time on a shared machine includes waiting for the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout
from benchmarks._common import add_set_option, parse_set  # noqa: E402
from ppo_cli.config import resolve
from ppo_cli.core.trainer import train

ENV = "CartPole-v1"
BAR_RETURN = 475.0
BAR_STEPS = 100_000
BAR_SECONDS = 10.0


def run_in_process(env: str, overrides: dict, seed: int, run_dir: Path) -> dict:
    cfg = resolve({"env": env, **overrides, "seed": seed})  # as `ppoqa train` resolves flags
    w0, c0 = time.perf_counter(), time.process_time()
    result = train(cfg, run_dir)
    total, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {
        "seed": seed,
        "timesteps": result.steps,
        "train_seconds": round(result.wall_seconds, 3),
        "total_seconds": round(total, 3),  # + env creation and the final 20-episode eval
        "cpu_seconds": round(cpu, 3),
        "sps": round(result.steps / result.wall_seconds),
        "eval_mean_return": result.mean_return,
    }


def run_command(env: str, overrides: dict, seed: int, run_dir: Path) -> dict:
    """The whole `python -m ppo_cli train` process: interpreter and torch start-up included."""
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in overrides.items()]
    cmd = [sys.executable, "-m", "ppo_cli", "train", "--env", env, "--seed", str(seed)]
    cmd += ["--run-dir", str(run_dir), "--json", *flags]
    w0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - w0
    child = os.times()
    summary = json.loads(proc.stdout)
    return {
        "command_seconds": round(wall, 3),
        "command_cpu_seconds": round(child.children_user + child.children_system, 3),
        "command_eval_mean_return": summary["mean_return"],
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    ap.add_argument("--env", default=ENV, help=f"gymnasium id (default {ENV})")
    ap.add_argument("--cli", action="store_true", help="also time the full command per seed")
    add_set_option(ap)
    args = ap.parse_args(argv)
    overrides = parse_set(args.set)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            row = run_in_process(args.env, overrides, seed, Path(tmp) / f"seed{seed}")
            if args.cli:
                before = os.times()
                row |= run_command(args.env, overrides, seed, Path(tmp) / f"cli{seed}")
                row["command_cpu_seconds"] = round(
                    row["command_cpu_seconds"] - before.children_user - before.children_system, 3
                )
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    solved = [
        r for r in rows if r["eval_mean_return"] >= BAR_RETURN and r["timesteps"] <= BAR_STEPS
    ]
    walls = [r.get("command_seconds", r["total_seconds"]) for r in rows]
    doc = {
        "benchmark": "cartpole",
        "env": args.env,
        "config": resolve({"env": args.env, **overrides}).to_dict(),
        "seeds": rows,
        "num_seeds": len(rows),
        "solved": len(solved) if args.env == ENV else None,
        "mean_eval_return": round(statistics.fmean(r["eval_mean_return"] for r in rows), 2),
        "median_train_seconds": round(statistics.median(r["train_seconds"] for r in rows), 3),
        "max_wall_seconds": round(max(walls), 3),
        "median_sps": round(statistics.median(r["sps"] for r in rows)),
        "meets_bar": (
            len(solved) == len(rows) and max(walls) <= BAR_SECONDS if args.env == ENV else None
        ),
        "load_average_1min": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(doc, indent=2))
    return doc


if __name__ == "__main__":
    main()
