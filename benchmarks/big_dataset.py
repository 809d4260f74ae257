"""Accuracy, wall time and peak memory on a bigger dataset; prints one JSON document.

    python benchmarks/big_dataset.py                     # examples/general_knowledge.yaml,
                                                         # --preset quality, seed 0
    python benchmarks/big_dataset.py --seeds 3 --set hidden_size=128
    python benchmarks/big_dataset.py --preset balanced --set iterations=300

Each seed trains in a fresh child process (exactly as `ppoqa train --dataset ... --preset ...`
does), so its peak memory is its own. Memory is the process's peak resident set size
(resource.getrusage(RUSAGE_SELF).ru_maxrss: Python, torch and every tensor), reported next to
the same figure taken right after the imports, before training.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmark this checkout, not an installed ppoqa


def _rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kib / 1024, 1)


def child(flags: dict[str, Any], preset: str | None, run_dir: str) -> dict[str, Any]:
    """One training run in this process; returns its numbers."""
    from ppo_cli.config import resolve, validate
    from ppo_cli.core.trainer import train

    rss_after_imports = _rss_mib()
    cfg = validate(resolve(flags, preset=preset))
    t0 = time.perf_counter()
    result = train(cfg, Path(run_dir))
    return {
        "seed": cfg.seed,
        "final_accuracy": round(result.final_accuracy or 0.0, 4),
        "correct": sum(r.correct for r in result.final_results),
        "total": len(result.final_results),
        "iterations": result.iterations,
        "episodes": result.episodes,
        "steps": result.steps,
        "train_seconds": round(result.wall_seconds, 2),
        "total_seconds": round(time.perf_counter() - t0, 2),
        "peak_rss_mib": _rss_mib(),
        "rss_after_imports_mib": rss_after_imports,
        "config": cfg.to_dict(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1, help="how many seeds")
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first..first+N-1")
    ap.add_argument("--dataset", default=str(ROOT / "examples" / "general_knowledge.yaml"))
    ap.add_argument("--preset", default="quality", help="fast | balanced | quality | none")
    ap.add_argument("--target-accuracy", type=float, default=0.95)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any Config field, YAML-parsed (repeatable)",
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    preset = None if args.preset in ("none", "") else args.preset
    if args.child is not None:  # internal: one run, JSON on stdout
        spec = json.loads(args.child)
        print(json.dumps(child(spec["flags"], preset, spec["run_dir"])))
        return {}

    flags: dict[str, Any] = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    flags["dataset"] = args.dataset
    flags.setdefault("target_accuracy", args.target_accuracy)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            spec = {"flags": {**flags, "seed": seed}, "run_dir": str(Path(tmp) / f"s{seed}")}
            cmd = [sys.executable, __file__, "--preset", args.preset, "--child", json.dumps(spec)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            config = row.pop("config")
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    doc = {
        "benchmark": "big_dataset",
        "dataset": args.dataset,
        "preset": preset,
        "config": config,
        "memory_measure": "peak RSS of the training process, resource.getrusage ru_maxrss",
        "seeds": rows,
        "reached_target": sum(r["final_accuracy"] >= args.target_accuracy for r in rows),
        "num_seeds": len(rows),
        "median_final_accuracy": statistics.median(r["final_accuracy"] for r in rows),
        "median_train_seconds": statistics.median(r["train_seconds"] for r in rows),
        "max_peak_rss_mib": max(r["peak_rss_mib"] for r in rows),
    }
    print(json.dumps(doc, indent=2))
    return doc


if __name__ == "__main__":
    main()
