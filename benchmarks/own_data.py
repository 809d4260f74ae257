"""Default `ppoqa train` on user-style datasets, as a user runs it; prints one JSON document.

    python benchmarks/own_data.py                                  # the issue-10 suite
    python benchmarks/own_data.py --dataset examples/capitals30.yaml --seeds 3
    python benchmarks/own_data.py --dataset builtin --set reward=seed
    python benchmarks/own_data.py --scaling --figure docs/large-datasets.png  # 250-1,000 pairs

Every seed is a whole CLI process (`python -m ppo_cli train --dataset D --seed S --json -q`),
so start-up, imports and the run directory count. Per seed: final greedy accuracy, solved
(100 %), iterations, stop reason, hedged and reordered final answers, wall seconds of the whole
process, its peak RSS (os.wait4) and the load average around it (the machine may be shared:
wall times taken under load are upper bounds).
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
sys.path.insert(0, str(ROOT))
from benchmarks._common import add_set_option, parse_set  # noqa: E402

# (dataset, seeds) of the issue: 0-9, and 0-2 for the largest example.
SUITE = [
    ("builtin", 10),
    ("examples/capitals30.yaml", 10),
    ("examples/capitals.yaml", 10),
    ("examples/arithmetic.yaml", 10),
    ("examples/general_knowledge.yaml", 10),
    ("examples/heldout/mixed30.yaml", 10),
    ("examples/numbers_in_words.yaml", 3),
    ("examples/trivia1000.yaml", 3),
    ("examples/heldout/trivia950.yaml", 3),
]

# --scaling: time to 95 % and peak memory against the number of pairs (nested subsets of one
# mixed set), and the held-out set of the same kind that no setting was tuned on.
SCALING = [
    ("examples/trivia250.yaml", 3),
    ("examples/trivia500.yaml", 3),
    ("examples/trivia1000.yaml", 3),
    ("examples/heldout/trivia950.yaml", 3),
]


def run_one(
    dataset: str, seed: int, config: Path | None, timeout: float, tmp: Path, tree: Path = ROOT
) -> dict:
    """One whole `train` command of the checkout `tree` (this one, or --baseline's)."""
    from ppo_cli.textqa.data import tokenize
    from ppo_cli.textqa.rewards import answer_kind

    # not -q: the plan (the rehearsal that times an iteration) is part of what a user runs
    cmd = [sys.executable, "-m", "ppo_cli", "train", "--seed", str(seed), "--json"]
    run_dir = tmp / f"{Path(dataset).stem}-{seed}-{tree.name}"
    cmd += ["--run-dir", str(run_dir)]
    if dataset != "builtin":
        cmd += ["--dataset", str(ROOT / dataset)]
    if config is not None:
        cmd += ["--config", str(config)]
    out_path = tmp / "stdout.json"
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(out_path, "w") as out, open(os.devnull, "w") as devnull:
        env = os.environ | {"PYTHONPATH": str(tree)}
        proc = subprocess.Popen(cmd, stdout=out, stderr=devnull, cwd=tree, env=env)
        deadline = t0 + timeout
        status, rusage = 0, None
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                _, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
    wall = time.perf_counter() - t0
    row: dict = {
        "dataset": dataset,
        "seed": seed,
        "tree": "this" if tree == ROOT else str(tree),
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(rusage.ru_utime + rusage.ru_stime, 2),  # less load-dependent
        "peak_rss_mib": round(rusage.ru_maxrss / 1024, 1),  # Linux: KiB
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "exit_code": os.waitstatus_to_exitcode(status),
    }
    try:
        doc = json.loads(out_path.read_text())
    except json.JSONDecodeError:
        row["error"] = "timed out" if wall >= timeout else "no JSON summary"
        return row
    row.update(_time_to(run_dir, wall, 0.95))
    if "plan" in doc:
        row["plan"] = doc["plan"]
    kinds: dict[str, int] = {}
    for r in doc.get("final_results", []):
        kind = answer_kind(tokenize(r["answer"]), tokenize(r["target"]))
        kinds[kind] = kinds.get(kind, 0) + 1
    row.update(
        final_accuracy=doc.get("final_accuracy"),
        solved=doc.get("final_accuracy") == 1.0,
        iterations=doc.get("iterations"),
        stop_reason=doc.get("stop_reason"),
        hedges=kinds.get("hedge", 0),
        word_order=kinds.get("word_order", 0),
        findings=[f["code"] for f in doc.get("findings", [])],
        hedged_answers=[
            r["answer"]
            for r in doc.get("final_results", [])
            if answer_kind(tokenize(r["answer"]), tokenize(r["target"])) == "hedge"
        ][:10],
    )
    return row


def _time_to(run: Path, wall: float, target: float) -> dict:
    """Whole-command seconds until greedy accuracy first reached target: the training time
    then, plus everything of the process outside the training loop (start-up, the final
    evaluation and summary; so an upper bound), and the iteration."""
    try:
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    except (OSError, json.JSONDecodeError):
        return {}
    if not records:
        return {}
    outside = wall - records[-1]["wall_seconds"]
    for r in records:
        if (r.get("eval_accuracy") or 0) >= target:
            return {
                "seconds_to_95": round(outside + r["wall_seconds"], 2),
                "iterations_to_95": r["iteration"],
            }
    return {"seconds_to_95": None, "iterations_to_95": None}


def summarize(rows: list[dict]) -> dict:
    ok = [r for r in rows if "final_accuracy" in r]
    wall = [r["wall_seconds"] for r in rows]
    return {
        "num_seeds": len(rows),
        "solved": sum(bool(r.get("solved")) for r in rows),
        "at_least_95": sum((r.get("final_accuracy") or 0) >= 0.95 for r in rows),
        "median_accuracy": statistics.median(r["final_accuracy"] for r in ok) if ok else None,
        "median_wall_seconds": round(statistics.median(wall), 2),
        "max_wall_seconds": max(wall),
        "median_cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in rows), 2),
        "median_iterations": statistics.median(r["iterations"] for r in ok) if ok else None,
        "max_peak_rss_mib": max(r["peak_rss_mib"] for r in rows),
        "hedges": sum(r.get("hedges", 0) for r in rows),
        "word_order": sum(r.get("word_order", 0) for r in rows),
        "stop_reasons": {
            k: sum(r.get("stop_reason") == k for r in rows) for k in ("solved", "stalled", "budget")
        },
        "median_load": statistics.median(r["load_before"] for r in rows),
        "max_seconds_to_95": max(
            (r.get("seconds_to_95") or float("inf") for r in rows), default=None
        ),
        "median_iterations_to_95": statistics.median(
            r.get("iterations_to_95") or float("inf") for r in rows
        ),
    }


def draw_scaling(doc: dict, path: Path) -> None:
    """Time to 95 % and peak memory against the number of pairs, one point per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(9, 3.6))
    for dataset, entry in doc["datasets"].items():
        held_out = "heldout" in dataset
        for r in entry["seeds"]:
            pairs = r.get("plan", {}).get("pairs") or _pairs(dataset)
            style = {"marker": "s" if held_out else "o", "color": "C1" if held_out else "C0"}
            if r.get("seconds_to_95") is not None:
                ax_t.scatter(pairs, r["seconds_to_95"], **style)
            ax_m.scatter(pairs, r["peak_rss_mib"], **style)
    ax_t.axhline(300, color="grey", ls="--", lw=1)
    ax_t.set(xlabel="pairs", ylabel="whole command to 95 % (s)", title="Time to 95 %")
    ax_m.axhline(1024, color="grey", ls="--", lw=1)
    ax_m.set(xlabel="pairs", ylabel="peak RSS (MiB)", title="Memory")
    ax_m.set_ylim(0, 1100)
    ax_t.set_ylim(bottom=0)
    for ax in (ax_t, ax_m):
        ax.scatter([], [], marker="o", color="C0", label="trivia subsets")
        ax.scatter([], [], marker="s", color="C1", label="held-out trivia950")
    ax_t.legend(loc="upper left", fontsize=8)
    fig.suptitle("Default `ppoqa train`, seeds 0-2, whole commands", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Creator": "ppoqa benchmarks/own_data.py"})


def _pairs(dataset: str) -> int:
    from ppo_cli.textqa.data import load_dataset

    return len(load_dataset(dataset).pairs)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", action="append", help="dataset path or 'builtin' (repeatable)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default: the suite's)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per process")
    ap.add_argument("--scaling", action="store_true", help="the 250-1,000-pair scaling suite")
    ap.add_argument("--figure", type=Path, help="draw time to 95 %% and memory to this PNG")
    ap.add_argument(
        "--baseline",
        type=Path,
        help="another ppoqa checkout: each seed runs there too, alternating, for the speed-up",
    )
    add_set_option(ap)
    args = ap.parse_args(argv)
    overrides = parse_set(args.set)
    suite = [(d, args.seeds or 10) for d in args.dataset] if args.dataset else SUITE
    if args.scaling:
        suite = [(d, args.seeds or n) for d, n in SCALING]
    if args.seeds and not args.dataset:
        suite = [(d, min(n, args.seeds)) for d, n in suite]
    doc: dict = {"benchmark": "own_data", "overrides": overrides, "datasets": {}}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        config = None
        if overrides:
            import yaml

            config = tmp / "overrides.yaml"
            config.write_text(yaml.safe_dump(overrides))
        for dataset, seeds in suite:
            rows, base = [], []
            for seed in range(seeds):
                if args.baseline is not None:
                    tree = args.baseline.resolve()
                    base.append(run_one(dataset, seed, config, args.timeout, tmp, tree))
                    print(json.dumps(base[-1]), file=sys.stderr, flush=True)
                rows.append(run_one(dataset, seed, config, args.timeout, tmp))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            doc["datasets"][dataset] = {"summary": summarize(rows), "seeds": rows}
            if base:
                entry = doc["datasets"][dataset]
                entry["baseline"] = {"tree": str(args.baseline), "summary": summarize(base)}
                entry["baseline"]["seeds"] = base
                entry["summary"]["speedup"] = round(
                    entry["baseline"]["summary"]["median_wall_seconds"]
                    / entry["summary"]["median_wall_seconds"],
                    2,
                )
    print(json.dumps(doc, indent=2))
    if args.figure:
        draw_scaling(doc, args.figure)
    return doc


if __name__ == "__main__":
    main()
