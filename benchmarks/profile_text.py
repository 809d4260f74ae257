"""Where a text-QA iteration's time goes: cProfile around training, top items as JSON.

    python benchmarks/profile_text.py                                   # trivia1000, 20 iterations
    PYTHONPATH=../ppoqa-old python benchmarks/profile_text.py --label before

Trains `--iterations` iterations of the default settings on `--dataset` (seed 0) in this
process under cProfile and prints one JSON document: CPU seconds of the whole training, the
episodes it sampled, replayed and probed, and the items with the most own time plus the
phases (update, backward pass, rollout) by cumulative time. Run it with PYTHONPATH set to
another checkout to profile that one the same way.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

PHASES = {  # function name -> phase, by cumulative time
    "ppo_update": "update (forward, backward, optimizer)",
    "run_backward": "backward pass",
    "collect": "rollout, probes and replays",
    "evaluate_qa": "greedy evaluation",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="examples/trivia1000.yaml")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--label", default="this checkout")
    args = ap.parse_args()
    from ppo_cli.config import resolve

    try:
        from ppo_cli.core import trainer
    except ImportError:  # a checkout from before the core/ package
        from ppo_cli import trainer  # type: ignore[no-redef]
    cfg = resolve({"dataset": args.dataset, "iterations": args.iterations, "seed": 0})
    with tempfile.TemporaryDirectory() as tmp:
        profile = cProfile.Profile()
        cpu = time.process_time()
        profile.enable()
        result = trainer.train(cfg, Path(tmp) / "run")
        profile.disable()
        cpu = time.process_time() - cpu
        records = [json.loads(x) for x in (Path(tmp) / "run/metrics.jsonl").read_text().split()]
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    rows = [
        {"function": f"{Path(f).name}:{line}({name})", "own_s": round(tt, 3), "cum_s": round(ct, 3)}
        for (f, line, name), (_, _, tt, ct, _) in stats.items()
    ]
    phases = {}
    for (_, _, name), (_, _, _, ct, _) in stats.items():
        if name in PHASES:
            phases[PHASES[name]] = round(max(ct, phases.get(PHASES[name], 0.0)), 3)
    replayed = sum(r.get("replayed_episodes", 0) for r in records)
    doc = {
        "benchmark": "profile_text",
        "label": args.label,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "dataset": args.dataset,
        "iterations": args.iterations,
        "cpu_seconds": round(cpu, 2),
        "sampled_episodes": result.episodes,
        "replayed_episodes": replayed,
        "probe_episodes": records[-1].get("probe_episodes", 0),
        "final_accuracy": result.final_accuracy,
        "phases_cum_s": phases,
        "top_own_time": sorted(rows, key=lambda r: -r["own_s"])[: args.top],
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
