"""Does `--curriculum` help? Same settings with and without it over seeds; prints one JSON document.

    python benchmarks/curriculum.py                          # examples/curriculum.yaml, seeds 0-4
    python benchmarks/curriculum.py --seeds 10 --set curriculum_threshold=0.9
    python benchmarks/curriculum.py --policy transformer --preset fast

Each run trains in-process exactly as `ppoqa train [--curriculum]` does, with early stop at
100 % greedy accuracy on *all* questions (a curriculum run can only stop once every level is
active). Compared: runs that solved the whole set, iterations, episodes and wall seconds to
get there, and final accuracy per level.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

# Benchmark this checkout, not whichever ppoqa happens to be installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import add_set_option, parse_set  # noqa: E402
from ppo_cli.config import (
    resolve,  # noqa: E402
    validate,  # noqa: E402
)
from ppo_cli.core.trainer import train  # noqa: E402
from ppo_cli.presets import PRESET_NAMES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    solved = [r for r in rows if r["final_accuracy"] == 1.0]

    def med(key: str, rs: list[dict[str, Any]]) -> float | None:
        return round(statistics.median(r[key] for r in rs), 3) if rs else None

    return {
        "solved": len(solved),
        "num_seeds": len(rows),
        "mean_final_accuracy": round(statistics.mean(r["final_accuracy"] for r in rows), 4),
        "median_iterations_all": med("iterations", rows),
        "median_episodes_all": med("episodes", rows),
        "median_train_seconds_all": med("train_seconds", rows),
        "median_iterations_solved": med("iterations", solved),
        "median_train_seconds_solved": med("train_seconds", solved),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    ap.add_argument("--dataset", default=str(ROOT / "examples" / "curriculum.yaml"))
    ap.add_argument("--policy", default=None)
    ap.add_argument("--preset", default=None, choices=PRESET_NAMES)
    add_set_option(ap)
    args = ap.parse_args(argv)
    overrides: dict[str, Any] = parse_set(args.set)
    overrides["dataset"] = args.dataset
    overrides.setdefault("iterations", 300)
    if args.policy:
        overrides["policy"] = args.policy
    arms: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for arm in arms:
                flags = {**overrides, "seed": seed, "curriculum": arm == "with"}
                cfg = validate(resolve(flags, preset=args.preset))
                run_dir = Path(tmp) / f"{arm}-s{seed}"
                result = train(cfg, run_dir)
                levels = [p.level for p in _pairs(run_dir)]
                per_level: dict[str, float] = {}
                for lvl in sorted(set(levels)):
                    hits = [
                        r.correct
                        for r, lv in zip(result.final_results, levels, strict=True)
                        if lv == lvl
                    ]
                    per_level[str(lvl)] = round(sum(hits) / len(hits), 3)
                row = {
                    "seed": seed,
                    "curriculum": arm == "with",
                    "final_accuracy": result.final_accuracy,
                    "accuracy_per_level": per_level,
                    "iterations": result.iterations,
                    "episodes": result.episodes,
                    "train_seconds": round(result.wall_seconds, 3),
                    "all_levels_active_at": _all_active_at(run_dir),
                }
                arms[arm].append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    doc = {
        "benchmark": "curriculum",
        "dataset": args.dataset,
        "preset": args.preset,
        "config": validate(resolve(overrides, preset=args.preset)).to_dict(),
        "without_curriculum": _summary(arms["without"]),
        "with_curriculum": _summary(arms["with"]),
        "runs": arms["without"] + arms["with"],
    }
    print(json.dumps(doc, indent=2))
    return doc


def _pairs(run_dir: Path) -> list[Any]:
    from ppo_cli.textqa.data import load_dataset

    return load_dataset(run_dir / "dataset.yaml").pairs


def _all_active_at(run_dir: Path) -> int | None:
    """The iteration whose evaluation made the last level active (None: never, or no levels)."""
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if "curriculum_advanced_to" in rec and rec["curriculum_stage"] + 1 == rec.get(
            "curriculum_stages"
        ):
            return rec["iteration"]
    return None


if __name__ == "__main__":
    main()
