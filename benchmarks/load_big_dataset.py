"""Loading and encoding a big dataset: seconds, peak memory, linearity; prints one JSON document.

    python benchmarks/load_big_dataset.py                 # 300,000 pairs, and a quarter of it
    python benchmarks/load_big_dataset.py --pairs 100000

Issue 15 (row 5): a valid 19 MB dataset of 329,502 pairs printed nothing for 120 s and peaked
at 1.8 GB. This writes a dataset of --pairs generated pairs (and one of a quarter of them, to
show that the time grows linearly), then, in a fresh child process each, does what `ppoqa
train` does before its first iteration: load_dataset (with its progress lines), the
vocabulary, and the encoded QATask tensors. Memory is the child's peak resident set size
(ru_maxrss) minus the same figure right after the imports, next to the file's size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmark this checkout, not an installed ppoqa


def write_dataset(path: Path, pairs: int) -> int:
    """A dataset of `pairs` distinct questions over 5,000 answer words; returns its bytes."""
    with path.open("w", encoding="utf-8") as fh:
        fh.write("name: big\npairs:\n")
        for i in range(pairs):
            fh.write(f'  - question: "What is item {i}?"\n    answer: "w{i % 5000}"\n')
    return path.stat().st_size


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(path: str) -> dict[str, Any]:
    """Load and encode in this process; the numbers of one measurement."""
    from ppo_cli.textqa.data import Vocabulary, load_dataset
    from ppo_cli.textqa.env import QATask

    base = _peak_mib()
    lines: list[str] = []
    t0 = time.perf_counter()
    dataset = load_dataset(path, lines.append)
    t_load = time.perf_counter() - t0
    vocab = Vocabulary.from_dataset(dataset)
    task = QATask(dataset, vocab)
    t_all = time.perf_counter() - t0
    return {
        "pairs": len(dataset.pairs),
        "vocab": len(vocab),
        "prompt_shape": list(task.prompts.shape),
        "load_seconds": round(t_load, 2),
        "load_and_encode_seconds": round(t_all, 2),
        "peak_rss_mib": round(_peak_mib(), 1),
        "rss_after_imports_mib": round(base, 1),
        "progress_lines": len(lines),
        "first_progress_line": lines[0] if lines else None,
    }


def measure(path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=300_000)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (args.pairs // 4, args.pairs):
            path = Path(tmp) / f"big{n}.yaml"
            size = write_dataset(path, n)
            r = measure(path)
            used = r["peak_rss_mib"] - r["rss_after_imports_mib"]
            r.update(
                file_mb=round(size / 1e6, 2),
                rss_over_imports_mib=round(used, 1),
                memory_over_file_size=round(used * 2**20 / size, 1),
            )
            results.append(r)
    small, big = results
    print(
        json.dumps(
            {
                "runs": results,
                "seconds_ratio_for_4x_pairs": round(
                    big["load_and_encode_seconds"] / max(small["load_and_encode_seconds"], 1e-9),
                    2,
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
