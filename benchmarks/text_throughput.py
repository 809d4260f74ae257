"""Episodes per second of text-QA training, this tree against another checkout, as whole commands.

    python benchmarks/text_throughput.py --baseline ../ppoqa-old
    python benchmarks/text_throughput.py --dataset examples/trivia1000.yaml --iterations 30

Each repeat runs `python -m ppo_cli train --dataset D --iterations N --seed S --json -q` in
the baseline checkout, then in this one (alternating, so a change of load hits both alike).
Per run: the whole process's wall and CPU seconds (os.wait4) and, from metrics.jsonl, the
training phase alone (the last record's wall_seconds: no start-up, no rehearsal). Episodes
are counted three ways: sampled (the summary's `episodes`), trained (sampled plus replayed
answers: what the update learns from) and all (trained plus forward-only probes). The ratio
of medians compares this tree with the baseline; one JSON document on stdout.
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

ROOT = Path(__file__).resolve().parents[1]


def run_one(tree: Path, dataset: str, iterations: int, seed: int, tmp: Path) -> dict:
    run_dir = tmp / f"{tree.name}-{seed}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "ppo_cli", "train", "--dataset", str(ROOT / dataset)]
    cmd += ["--iterations", str(iterations), "--seed", str(seed), "--json", "-q"]
    cmd += ["--run-dir", str(run_dir)]
    env = os.environ | {"PYTHONPATH": str(tree)}
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        proc = subprocess.Popen(cmd, stdout=devnull, stderr=devnull, cwd=tree, env=env)
        _, status, rusage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"text_throughput: {' '.join(cmd)} failed in {tree}")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = records[-1]
    replayed = sum(r.get("replayed_episodes", 0) for r in records)
    trained = last["episodes"] + replayed
    everything = trained + last.get("probe_episodes", 0)
    train_s = last["wall_seconds"]
    return {
        "tree": str(tree),
        "seed": seed,
        "load_before": round(load, 2),
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(rusage.ru_utime + rusage.ru_stime, 2),
        "training_seconds": round(train_s, 2),
        "sampled_episodes": last["episodes"],
        "trained_episodes": trained,
        "all_episodes": everything,
        "trained_per_second": round(trained / train_s),
        "all_per_second": round(everything / train_s),
        "trained_per_cpu_second": round(trained / (rusage.ru_utime + rusage.ru_stime)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True, help="another ppoqa checkout")
    ap.add_argument("--dataset", default="examples/trivia1000.yaml")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each tree, alternating")
    args = ap.parse_args()
    trees = {"baseline": args.baseline.resolve(), "this": ROOT}
    rows: dict[str, list[dict]] = {k: [] for k in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, tree in trees.items():
                row = run_one(tree, args.dataset, args.iterations, 0, Path(tmp))
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows[name].append(row)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[name])

    keys = ("trained_per_second", "all_per_second", "trained_per_cpu_second", "wall_seconds")
    summary = {k: {name: med(name, k) for name in trees} for k in keys}
    for k in keys[:3]:
        summary[k]["ratio"] = round(med("this", k) / med("baseline", k), 2)
    doc = {
        "benchmark": "text_throughput",
        "command": " ".join(sys.argv),
        "dataset": args.dataset,
        "iterations": args.iterations,
        "summary": summary,
        "runs": rows,
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
