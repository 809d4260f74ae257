"""Compare named setting variants on one dataset, in-process (faster than whole CLI runs, for
exploring); prints one JSON line per (variant, seed) and nothing else.

    python benchmarks/variants.py examples/capitals30.yaml 0,1 \\
        '{"lcs": {"reward": "lcs"}, "seed": {"reward": "seed", "answer_vocab": false}}'

Each variant is a mapping of Config fields applied over the defaults, as flags would be
("builtin" for the five built-in questions). A row holds the final greedy accuracy, the
iterations run, the CPU seconds of training, the first iteration whose greedy accuracy reached
90 %, 95 % and 100 % (null: never), and up to six wrong final answers as "answer|target".
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ppo_cli.config import resolve  # noqa: E402
from ppo_cli.core.trainer import Callbacks, train  # noqa: E402


class Curve(Callbacks):
    """Greedy accuracy of every evaluated iteration; warnings are dropped (stdout is data)."""

    def __init__(self) -> None:
        self.accuracy: list[float] = []

    def on_iteration(self, record: dict[str, Any]) -> None:
        if "eval_accuracy" in record:
            self.accuracy.append(record["eval_accuracy"])

    def on_warning(self, message: str) -> None:
        pass


def first_reaching(curve: list[float], level: float) -> int | None:
    return next((i + 1 for i, a in enumerate(curve) if a >= level - 1e-9), None)


def main(argv: list[str]) -> None:
    dataset, seeds, variants = argv[0], [int(s) for s in argv[1].split(",")], json.loads(argv[2])
    for name, over in variants.items():
        for seed in seeds:
            flags = {"seed": seed, **over}
            if dataset != "builtin":
                flags["dataset"] = dataset
            curve = Curve()
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.process_time()
                r = train(resolve(flags), Path(tmp) / "r", curve)
                cpu = time.process_time() - t0
            wrong = [f"{q.answer}|{q.target}" for q in r.final_results if not q.correct]
            row = {
                "v": name,
                "seed": seed,
                "acc": round(r.final_accuracy or 0.0, 3),
                "it": r.iterations,
                "cpu": round(cpu, 1),
                "it90": first_reaching(curve.accuracy, 0.9),
                "it95": first_reaching(curve.accuracy, 0.95),
                "it100": first_reaching(curve.accuracy, 1.0),
                "wrong": wrong[:6],
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
