"""Compare named setting variants on one dataset, in-process (faster than whole CLI runs, for
exploring); prints one JSON line per (variant, seed) and nothing else.

    python benchmarks/variants.py examples/capitals30.yaml 0,1 \\
        '{"lcs": {"reward": "lcs"}, "seed": {"reward": "seed", "answer_vocab": false}}'

Each variant is a mapping of Config fields applied over the defaults, as `--set` would. A row
holds the final greedy accuracy, iterations, wall seconds and the kinds of final answers
(exact, hedge, word_order, partial, wrong, empty; ppo_cli.envs.rewards.answer_kind).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ppo_cli.config import resolve  # noqa: E402
from ppo_cli.data import tokenize  # noqa: E402
from ppo_cli.envs.rewards import answer_kind  # noqa: E402
from ppo_cli.trainer import train  # noqa: E402


def main(argv: list[str]) -> None:
    dataset, seeds, variants = argv[0], [int(s) for s in argv[1].split(",")], json.loads(argv[2])
    for name, over in variants.items():
        for seed in seeds:
            cfg = resolve({"dataset": dataset, "seed": seed, **over})
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                r = train(cfg, Path(tmp) / "r")
                kinds: dict[str, int] = {}
                for q in r.final_results:
                    k = answer_kind(tokenize(q.answer), tokenize(q.target))
                    kinds[k] = kinds.get(k, 0) + 1
            row = {
                "variant": name,
                "seed": seed,
                "acc": round(r.final_accuracy or 0.0, 3),
                "it": r.iterations,
                "sec": round(time.perf_counter() - t0, 1),
                "kinds": kinds,
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
