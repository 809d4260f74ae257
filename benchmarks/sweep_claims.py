"""Do several processes claiming queued Optuna trials on one SQLite file ever claim the same one?

    python benchmarks/sweep_claims.py                    # 100 trials, 4 processes, both ways
    python benchmarks/sweep_claims.py --only serialized  # what ppoqa sweep uses

"plain" opens the file as Optuna does by default; "serialized" opens it through
ppo_cli.sweep.storage.open_storage (BEGIN IMMEDIATE for every transaction). Each process claims
WAITING trials the way a sweep worker does until none is left; a claim counted twice means two
workers would train the same configuration. One JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout


def _claimer(url: str, serialized: bool, out: str, start: float) -> None:
    from ppo_cli.sweep.storage import import_optuna, open_storage
    from ppo_cli.sweep.worker import _claim_waiting

    optuna = import_optuna()
    if serialized:
        storage = open_storage(url).storage
    else:
        storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
    study = optuna.load_study(study_name="claims", storage=storage)
    while time.time() < start:  # all processes begin together
        time.sleep(0.001)
    claimed = []
    while (trial_id := _claim_waiting(study)) is not None:
        claimed.append(trial_id)
    Path(out).write_text(json.dumps(claimed))


def run(mode: str, trials: int, procs: int, folder: Path) -> dict[str, object]:
    from ppo_cli.sweep.storage import import_optuna

    optuna = import_optuna()
    db = folder / f"{mode}.db"
    db.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    study = optuna.create_study(study_name="claims", storage=url)
    for i in range(trials):
        study.enqueue_trial({"x": i})
    start = time.time() + 3.0
    ctx = multiprocessing.get_context("spawn")
    outs = [folder / f"{mode}-{i}.json" for i in range(procs)]
    workers = [
        ctx.Process(target=_claimer, args=(url, mode == "serialized", str(o), start)) for o in outs
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    claimed = [t for o in outs for t in json.loads(o.read_text())]
    return {"mode": mode, "claims": len(claimed), "distinct": len(set(claimed))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--only", choices=("plain", "serialized"))
    ap.add_argument("--dir", type=Path, default=None, help="where the SQLite files go")
    args = ap.parse_args()
    modes = [args.only] if args.only else ["plain", "serialized"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        results = [run(m, args.trials, args.procs, folder) for m in modes]
    print(json.dumps({"trials": args.trials, "procs": args.procs, "results": results}))


if __name__ == "__main__":
    main()
