"""Where a gymnasium run's time goes: cProfile's top items for one in-process `train`.

    python benchmarks/profile_gym.py --env CartPole-v1 --seed 0 --top 15
    python benchmarks/profile_gym.py --env CartPole-v1 --set early_stop=false --label same-work

Trains one run with the shipped entry (plus --set KEY=VALUE overrides, YAML values), once plain
(its training seconds, and the wall and CPU seconds of the whole in-process train call) and once
under cProfile, and prints one JSON document: the run's steps and iterations, those times, the
wall time of the profiled call (profiling adds overhead, so compare profiles with profiles),
the time in each phase of an iteration (collection, update, early-stop checks, final
evaluation) and the functions with the most time of their own. Run it on an older checkout
(`PYTHONPATH=that/checkout python benchmarks/profile_gym.py ...`) to compare before and after.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Phases by function, matched on "file:function" of the profile's entries.
PHASES = {
    "collect": ("rollout.py", "collect"),
    "update": ("ppo.py", "ppo_update"),
    "gae": ("gae.py", "compute_gae"),
    "greedy evaluation": ("gym_evaluate.py", "evaluate_gym"),
    "env steps": (None, "step"),
}


def _where(key: tuple[str, int, str]) -> str:
    path, line, name = key
    if path == "~":
        return name
    return f"{Path(path).name}:{line}({name})"


def profile(env: str, seed: int, overrides: dict[str, Any], top: int) -> dict[str, Any]:
    import torch  # noqa: F401  (imported before timing: start-up is not the loop)

    from ppo_cli.config import resolve
    from ppo_cli.core.trainer import train

    cfg = resolve({"env": env, "seed": seed, **overrides})
    tmp = Path(tempfile.mkdtemp(prefix="ppoqa-profile-"))
    try:
        # once without the profiler: the run's own times (CPU time counts only this process's
        # work, so it moves less than wall time when other processes share the cores)
        w0, c0 = time.perf_counter(), time.process_time()
        plain = train(cfg, tmp / "plain")
        plain_wall, plain_cpu = time.perf_counter() - w0, time.process_time() - c0
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        result = train(cfg, tmp / "run")
        prof.disable()
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stats = pstats.Stats(prof)
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in entries.values())  # own time of every function
    phases: dict[str, float] = {}
    for phase, (file, func) in PHASES.items():
        cum = 0.0
        for (path, _line, name), (_cc, _nc, _tt, ct, _callers) in entries.items():
            if name == func and (file is None or Path(path).name == file):
                if file is None and "gymnasium" not in path:
                    continue  # env steps: gymnasium's own step() methods
                cum = max(cum, ct) if file is not None else cum + ct
        phases[phase] = round(cum, 3)
    rows = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    return {
        "env": env,
        "seed": seed,
        "overrides": overrides,
        "steps": result.steps,
        "iterations": result.iterations,
        "training_seconds": round(plain.wall_seconds, 3),
        "train_call_wall_seconds": round(plain_wall, 3),
        "train_call_cpu_seconds": round(plain_cpu, 3),
        "profiled_wall_seconds": round(wall, 3),
        "mean_return": result.mean_return,
        "stop_reason": getattr(result, "stop_reason", None),
        "phases_cumulative_seconds": phases,
        "own_time_total_seconds": round(total, 3),
        "top_own_time": [
            {
                "function": _where(key),
                "calls": nc,
                "own_seconds": round(tt, 4),
                "share": round(tt / total, 3) if total else None,
                "per_call_us": round(1e6 * tt / nc, 1) if nc else None,
            }
            for key, (_cc, nc, tt, _ct, _callers) in rows
        ],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--label", help="a name for this profile in the JSON")
    args = ap.parse_args(argv)
    import yaml

    overrides = {}
    for item in args.set:
        key, _, raw = item.partition("=")
        overrides[key.replace("-", "_")] = yaml.safe_load(raw)
    load0 = os.getloadavg()[0]
    doc = {
        "benchmark": "profile_gym",
        "label": args.label,
        "command": "python benchmarks/profile_gym.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "load": [round(load0, 2)],
        **profile(args.env, args.seed, overrides, args.top),
    }
    doc["load"].append(round(os.getloadavg()[0], 2))
    print(json.dumps(doc, indent=2))
    return doc


if __name__ == "__main__":
    main()
