"""Success rate and speed of the default text-QA training over seeds; prints one JSON document.

    python benchmarks/qa_seeds.py                      # seeds 0-9, built-in dataset, defaults
    python benchmarks/qa_seeds.py --policy transformer --seeds 10
    python benchmarks/qa_seeds.py --set learning_rate=0.003 --dataset examples/capitals.yaml
    python benchmarks/qa_seeds.py --preset fast

Settings resolve as in `ppoqa train`: defaults < policy defaults < --preset < --set.

Each seed trains in-process exactly as `ppoqa train --seed N` does (same Config, same trainer)
and reports its final greedy accuracy, iterations and wall seconds of training.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Benchmark this checkout, not whichever ppoqa happens to be installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import add_set_option, parse_set  # noqa: E402
from ppo_cli.config import (
    resolve,  # noqa: E402
    validate,  # noqa: E402
)
from ppo_cli.core.trainer import train  # noqa: E402
from ppo_cli.presets import PRESET_NAMES  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    ap.add_argument("--policy", default=None)
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--preset", default=None, choices=PRESET_NAMES)
    add_set_option(ap)
    args = ap.parse_args(argv)
    overrides = parse_set(args.set)
    if args.policy:
        overrides["policy"] = args.policy
    if args.dataset:
        overrides["dataset"] = args.dataset
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            cfg = validate(resolve({**overrides, "seed": seed}, preset=args.preset))
            t0 = time.perf_counter()
            result = train(cfg, Path(tmp) / f"seed{seed}")
            rows.append(
                {
                    "seed": seed,
                    "final_accuracy": result.final_accuracy,
                    "iterations": result.iterations,
                    "episodes": result.episodes,
                    "train_seconds": round(result.wall_seconds, 3),
                    "total_seconds": round(time.perf_counter() - t0, 3),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    secs = [r["train_seconds"] for r in rows]
    doc = {
        "benchmark": "qa_seeds",
        "preset": args.preset,
        "config": validate(resolve(overrides, preset=args.preset)).to_dict(),
        "seeds": rows,
        "solved": sum(r["final_accuracy"] == 1.0 for r in rows),
        "num_seeds": len(rows),
        "median_train_seconds": round(statistics.median(secs), 3),
        "max_train_seconds": round(max(secs), 3),
        "median_iterations": statistics.median(r["iterations"] for r in rows),
    }
    print(json.dumps(doc, indent=2))
    return doc


if __name__ == "__main__":
    main()
