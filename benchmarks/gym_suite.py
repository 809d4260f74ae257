"""Every shipped gymnasium entry, as a user runs it, beside Stable-Baselines3 + rl-zoo3 settings.

    python benchmarks/gym_suite.py                         # every entry, seeds 0-2, SB3 too
    python benchmarks/gym_suite.py --env Pendulum-v1 --env CartPole-v1 --seeds 3
    python benchmarks/gym_suite.py --no-sb3 --markdown     # ppoqa only; a README table
    python benchmarks/gym_suite.py --env Ant-v5 --no-sb3 --jobs 2   # seeds two at a time

ppoqa column: the two whole commands a user runs, `ppoqa train --env ID --seed N --run-dir D
--json` then `ppoqa eval --run D --episodes E --json` (E = 20, 200 for FrozenLake: success
rate); wall and CPU seconds are both processes together (interpreter and torch start-up, env
creation, training, train's own final evaluation, and eval), and each is also given alone.
SB3 column: a whole process training stable_baselines3.PPO with rl-zoo3's hyperparameters
for the id (its hyperparams/ppo.yml, copied below as data) on the *same* step budget, then the
same greedy (deterministic) episodes from the same seeds, with VecNormalize statistics frozen
where rl-zoo3 normalizes. SB3 is an optional benchmark dependency (`pip install
stable-baselines3`), never a runtime one; without it the SB3 column is left out.

One JSON line per run on stderr as it finishes, then one JSON document on stdout. The 1-minute
load average is recorded before and after each run: wall times taken under load are upper
bounds.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ppo_cli.presets import TUNED_FILE  # noqa: E402
from ppo_cli.sweep.stats import bootstrap_ci, iqm  # noqa: E402

EVAL_SEED = 1000
# Greedy episodes behind each bar (issue 12); 20 unless said otherwise.
EVAL_EPISODES = {"FrozenLake-v1": 200}
BARS = {  # mean greedy return each of the seeds must reach
    "CartPole-v1": 500.0,
    "Pendulum-v1": -200.0,
    "FrozenLake-v1": 0.65,
}

# rl-zoo3 hyperparams/ppo.yml (DLR-RM/rl-baselines3-zoo), as data, for the ids ppoqa ships.
# Where rl-zoo3's entry names an older version (LunarLander-v2, HalfCheetah-v3, ...) the
# settings are the same for the current one. n_timesteps is replaced by ppoqa's budget.
_MUJOCO_NET = {"log_std_init": -2, "ortho_init": False, "activation_fn": "relu",
               "net_arch": {"pi": [256, 256], "vf": [256, 256]}}  # fmt: skip
ZOO: dict[str, dict[str, Any]] = {
    "CartPole-v1": {"n_envs": 8, "n_steps": 32, "batch_size": 256, "gae_lambda": 0.8,
                    "gamma": 0.98, "n_epochs": 20, "ent_coef": 0.0, "learning_rate": "lin_0.001",
                    "clip_range": "lin_0.2"},
    "Pendulum-v1": {"n_envs": 4, "n_steps": 1024, "gae_lambda": 0.95, "gamma": 0.9,
                    "n_epochs": 10, "ent_coef": 0.0, "learning_rate": 1e-3, "clip_range": 0.2,
                    "use_sde": True, "sde_sample_freq": 4},
    "MountainCar-v0": {"normalize": True, "n_envs": 16, "n_steps": 16, "gae_lambda": 0.98,
                       "gamma": 0.99, "n_epochs": 4, "ent_coef": 0.0},
    "MountainCarContinuous-v0": {"normalize": True, "n_envs": 1, "batch_size": 256,
                                 "n_steps": 8, "gamma": 0.9999, "learning_rate": 7.77e-05,
                                 "ent_coef": 0.00429, "clip_range": 0.1, "n_epochs": 10,
                                 "gae_lambda": 0.9, "max_grad_norm": 5, "vf_coef": 0.19,
                                 "use_sde": True,
                                 "policy_kwargs": {"log_std_init": -3.29, "ortho_init": False}},
    "Acrobot-v1": {"normalize": True, "n_envs": 16, "n_steps": 256, "gae_lambda": 0.94,
                   "gamma": 0.99, "n_epochs": 4, "ent_coef": 0.0},
    "LunarLander-v3": {"n_envs": 16, "n_steps": 1024, "batch_size": 64, "gae_lambda": 0.98,
                       "gamma": 0.999, "n_epochs": 4, "ent_coef": 0.01},
    "LunarLanderContinuous-v3": {"n_envs": 16, "n_steps": 1024, "batch_size": 64,
                                 "gae_lambda": 0.98, "gamma": 0.999, "n_epochs": 4,
                                 "ent_coef": 0.01},
    "HalfCheetah-v5": {"normalize": True, "n_envs": 1, "batch_size": 64, "n_steps": 512,
                       "gamma": 0.98, "learning_rate": 2.0633e-05, "ent_coef": 0.000401762,
                       "clip_range": 0.1, "n_epochs": 20, "gae_lambda": 0.92,
                       "max_grad_norm": 0.8, "vf_coef": 0.58096, "policy_kwargs": _MUJOCO_NET},
    "Hopper-v5": {"normalize": True, "n_envs": 1, "batch_size": 32, "n_steps": 512,
                  "gamma": 0.999, "learning_rate": 9.80828e-05, "ent_coef": 0.00229519,
                  "clip_range": 0.2, "n_epochs": 5, "gae_lambda": 0.99, "max_grad_norm": 0.7,
                  "vf_coef": 0.835671, "policy_kwargs": _MUJOCO_NET},
    "Walker2d-v5": {"normalize": True, "n_envs": 1, "batch_size": 32, "n_steps": 512,
                    "gamma": 0.99, "learning_rate": 5.05041e-05, "ent_coef": 0.000585045,
                    "clip_range": 0.1, "n_epochs": 20, "gae_lambda": 0.95, "max_grad_norm": 1,
                    "vf_coef": 0.871923, "policy_kwargs": _MUJOCO_NET},
}  # fmt: skip


# rl-zoo3's own budget (n_timesteps in its hyperparams/ppo.yml) per id: with --sb3-budget zoo
# SB3 trains for this long, "the time SB3 with rl-zoo3's settings takes to learn", whatever
# ppoqa's run used (an early-stopped ppoqa run would otherwise hand SB3 too few steps).
ZOO_TIMESTEPS = {
    "CartPole-v1": 100_000, "Pendulum-v1": 100_000, "Acrobot-v1": 1_000_000,
    "MountainCar-v0": 1_000_000, "MountainCarContinuous-v0": 20_000,
    "LunarLander-v3": 1_000_000, "LunarLanderContinuous-v3": 1_000_000,
    "HalfCheetah-v5": 1_000_000, "Hopper-v5": 1_000_000, "Walker2d-v5": 1_000_000,
}  # fmt: skip


def shipped_entries() -> dict[str, dict[str, Any]]:
    import yaml

    table = yaml.safe_load((ROOT / "ppo_cli" / TUNED_FILE).read_text(encoding="utf-8"))
    default = table.pop("default", {}) or {}
    table.pop("default_continuous", None)  # for ids without an entry, not an id itself
    return {env: {**default, **(entry or {})} for env, entry in table.items()}


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _ppoqa_cmd() -> list[str]:
    """The `ppoqa` console script beside this interpreter (what a user types), else -m."""
    script = Path(sys.executable).with_name("ppoqa")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ppo_cli"]


def _timed(cmd: list[str]) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run cmd; its wall time and its own CPU seconds (wait4's rusage of this one child, so
    runs side by side under --jobs do not count each other's). Under load, wall time includes
    waiting for a core; CPU time does not, so both are reported."""
    w0 = time.perf_counter()
    pipe = subprocess.PIPE
    proc = subprocess.Popen(cmd, stdout=pipe, stderr=pipe, text=True, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    with ThreadPoolExecutor(max_workers=2) as readers:  # both pipes at once: neither fills up
        out, err = readers.submit(proc.stdout.read), readers.submit(proc.stderr.read)
        stdout, stderr = out.result(), err.result()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    return done, time.perf_counter() - w0, usage.ru_utime + usage.ru_stime


def run_ppoqa(env: str, seed: int, episodes: int, tmp: Path) -> dict[str, Any]:
    """`ppoqa train --env ID --seed N --run-dir D`, then `ppoqa eval --run D --episodes E
    --json`: two whole commands, each timed, as a user runs them. `mean_return` is eval's."""
    run_dir = tmp / f"ppoqa-{env.replace('/', '_')}-{seed}"
    train = [*_ppoqa_cmd(), "train", "--env", env, "--seed", str(seed), "--run-dir",
             str(run_dir), "--json"]  # fmt: skip
    load0 = _load()
    proc, wall, cpu = _timed(train)
    if proc.returncode != 0:
        return {"error": proc.stdout.strip()[-300:] or proc.stderr.strip()[-300:]}
    summary = json.loads(proc.stdout)
    ev = [*_ppoqa_cmd(), "eval", "--run", str(run_dir), "--episodes", str(episodes), "--json"]
    eproc, ewall, ecpu = _timed(ev)
    if eproc.returncode != 0:
        return {"error": eproc.stdout.strip()[-300:] or eproc.stderr.strip()[-300:]}
    doc = json.loads(eproc.stdout)
    return {
        "steps": summary["steps"],
        "mean_return": doc["mean_return"],
        "std_return": doc.get("std_return"),
        "train_summary_return": summary.get("mean_return"),
        "wall_seconds": round(wall + ewall, 2),
        "cpu_seconds": round(cpu + ecpu, 2),
        "train_wall_seconds": round(wall, 2),
        "eval_wall_seconds": round(ewall, 2),
        # the training phase as train reports it (the loop, its early-stop checks included)
        "training_seconds": summary.get("wall_seconds"),
        "stop_reason": summary.get("stop_reason"),
        "load": [load0, _load()],
    }


def run_sb3(env: str, seed: int, steps: int, episodes: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--sb3-worker", env, "--seeds", str(seed), "--timesteps",
           str(steps), "--episodes", str(episodes)]  # fmt: skip
    load0 = _load()
    proc, wall, cpu = _timed(cmd)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1][-300:]}
    doc = json.loads(proc.stdout)
    return {"steps": doc["steps"], "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "mean_return": doc["mean_return"], "load": [load0, _load()]}  # fmt: skip


def sb3_worker(env_id: str, seed: int, steps: int, episodes: int) -> None:
    """One SB3 run (in its own process, so its wall time is the whole process's)."""
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    hp = dict(ZOO[env_id])
    normalize = hp.pop("normalize", False)
    n_envs = hp.pop("n_envs", 1)
    for key in ("learning_rate", "clip_range"):
        if isinstance(hp.get(key), str) and hp[key].startswith("lin_"):
            start = float(hp[key][4:])
            hp[key] = lambda progress, start=start: progress * start
    if "policy_kwargs" in hp:
        kw = dict(hp["policy_kwargs"])
        if kw.get("activation_fn") == "relu":
            kw["activation_fn"] = torch.nn.ReLU
        if "net_arch" in kw:
            kw["net_arch"] = dict(kw["net_arch"])
        hp["policy_kwargs"] = kw
    venv = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize:
        venv = VecNormalize(venv, gamma=hp.get("gamma", 0.99))
    model = PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **hp)
    model.learn(total_timesteps=steps)
    returns = []
    for k in range(episodes):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=EVAL_SEED + k)
        total, done = 0.0, False
        while not done:
            x = venv.normalize_obs(obs) if normalize else obs
            action, _ = model.predict(x, deterministic=True)
            obs, reward, term, trunc, _ = env.step(action)
            total += float(reward)
            done = term or trunc
        env.close()
        returns.append(total)
    print(json.dumps({"steps": int(model.num_timesteps), "mean_return": float(np.mean(returns))}))


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if "mean_return" in r]
    if not ok:
        return {"runs": rows}
    rets = [r["mean_return"] for r in ok]
    lo, hi = bootstrap_ci(rets)  # over seeds, as `ppoqa sweep` and `ppoqa compare` report
    out = {
        "iqm_return": round(iqm(rets), 3),
        "ci95_return": [round(lo, 3), round(hi, 3)],
        "mean_return": round(statistics.fmean(rets), 3),
        "std_return": round(statistics.pstdev(rets), 3),
        "min_return": round(min(rets), 3),
        "median_wall_seconds": round(statistics.median(r["wall_seconds"] for r in ok), 2),
        "median_cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in ok), 2),
        # runs that stop early differ in length: the median, and the longest
        "steps": int(statistics.median(r["steps"] for r in ok)),
        "max_steps": max(r["steps"] for r in ok),
    }
    for key in ("train_wall_seconds", "training_seconds"):
        values = [r[key] for r in ok if r.get(key) is not None]
        if values:
            out[f"median_{key}"] = round(statistics.median(values), 2)
            out[f"max_{key}"] = round(max(values), 2)
    return out | {"runs": rows}


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "| env | steps | ppoqa return (seeds) | ppoqa s | SB3 + rl-zoo3 return | SB3 s | bar |",
        "|---|---:|---|---:|---|---:|---|",
    ]
    for env, res in doc["envs"].items():
        p, s = res["ppoqa"], res.get("sb3")

        def cell(x: dict[str, Any] | None) -> tuple[str, str]:
            if not x or "mean_return" not in x:
                return "—", "—"
            each = ", ".join(f"{r['mean_return']:.3g}" for r in x["runs"] if "mean_return" in r)
            return (f"{x['mean_return']:.3g} ± {x['std_return']:.2g} ({each})",
                    f"{x['median_wall_seconds']:.0f}")  # fmt: skip

        pr, pw = cell(p)
        sr, sw = cell(s)
        bar = res.get("bar")
        met = "—" if bar is None else ("met" if res.get("meets_bar") else "not met") + f" ({bar})"
        lines.append(f"| {env} | {p.get('steps', '—')} | {pr} | {pw} | {sr} | {sw} | {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="append", help="only these ids (repeatable)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    ap.add_argument("--no-sb3", action="store_true", help="leave out the SB3 column")
    ap.add_argument("--jobs", type=int, default=1,
                    help="ppoqa seeds side by side (default 1); SB3 one at a time")  # fmt: skip
    ap.add_argument("--sb3-seeds", type=int, help="SB3 on seeds 0..N-1 only (default: all)")
    ap.add_argument("--sb3-budget", choices=("same", "zoo"), default="same",
                    help="SB3's steps: the same as ppoqa's run (default) or rl-zoo3's own "
                    "n_timesteps for the id (the time SB3 takes to learn it)")  # fmt: skip
    ap.add_argument("--out", type=Path, help="also write the JSON document to this file")
    ap.add_argument("--markdown", action="store_true", help="also print a table on stderr")
    ap.add_argument("--sb3-worker", help=argparse.SUPPRESS)
    ap.add_argument("--timesteps", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--episodes", type=int, default=20, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.sb3_worker:
        sb3_worker(args.sb3_worker, args.seeds, args.timesteps, args.episodes)
        return None
    entries = shipped_entries()
    envs = args.env or list(entries)
    try:
        import stable_baselines3  # noqa: F401

        have_sb3 = not args.no_sb3
    except ImportError:
        have_sb3 = False
    doc: dict[str, Any] = {
        "benchmark": "gym_suite",
        "command": "python benchmarks/gym_suite.py " + " ".join(argv if argv is not None
                                                                 else sys.argv[1:]),
        "cpu_count": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "envs": {},
    }  # fmt: skip
    sb3_seeds = args.seeds if args.sb3_seeds is None else args.sb3_seeds
    with tempfile.TemporaryDirectory() as tmp:
        for env in envs:
            episodes = EVAL_EPISODES.get(env, 20)
            theirs: list[dict[str, Any]] = []

            def one(seed: int, env: str = env, episodes: int = episodes) -> dict[str, Any]:
                row = {"seed": seed, **run_ppoqa(env, seed, episodes, Path(tmp))}
                print(json.dumps({"env": env, "impl": "ppoqa", **row}), file=sys.stderr, flush=True)
                return row

            # --jobs > 1: seeds side by side (returns are the same; wall times are upper bounds)
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                ours = list(pool.map(one, range(args.seeds)))
            for seed, row in enumerate(ours):
                if have_sb3 and env in ZOO and "steps" in row and seed < sb3_seeds:
                    budget = row["steps"]
                    if args.sb3_budget == "zoo" and env in ZOO_TIMESTEPS:
                        budget = ZOO_TIMESTEPS[env]
                    srow = {"seed": seed, **run_sb3(env, seed, budget, episodes)}
                    print(json.dumps({"env": env, "impl": "sb3", **srow}), file=sys.stderr,
                          flush=True)  # fmt: skip
                    theirs.append(srow)
            res: dict[str, Any] = {"episodes": episodes, "tuned_entry": env in entries,
                                   "ppoqa": _summary(ours)}  # fmt: skip
            if theirs:
                res["sb3"] = _summary(theirs)
                sb3_wall = res["sb3"].get("median_wall_seconds")
                ok = [r for r in ours if "train_wall_seconds" in r]
                if sb3_wall and ok:
                    # ppoqa's medians over SB3's median whole process (train + its eval)
                    train_wall = statistics.median(r["train_wall_seconds"] for r in ok)
                    res["train_to_sb3"] = round(train_wall / sb3_wall, 3)
                    res["both_to_sb3"] = round(res["ppoqa"]["median_wall_seconds"] / sb3_wall, 3)
            if env in BARS:
                res["bar"] = BARS[env]
                res["meets_bar"] = all(r.get("mean_return", -1e18) >= BARS[env] for r in ours)
            doc["envs"][env] = res
    doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = json.dumps(doc, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    if args.markdown:
        print(markdown(doc), file=sys.stderr)
    print(text)
    return doc


if __name__ == "__main__":
    main()
