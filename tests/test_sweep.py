"""`ppoqa sweep`: search parsing, IQM and the bootstrap CI by hand, the report, and real worker
processes sharing one study (SQLite here; PostgreSQL when PPOQA_TEST_POSTGRES_URL is set, as
.ci/run does)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from ppo_cli.cli import app
from ppo_cli.config import Config
from ppo_cli.core.rundir import load_checkpoint, read_config
from ppo_cli.errors import UsageError
from ppo_cli.sweep.search import grid_points, is_grid, parse_search
from ppo_cli.sweep.stats import bootstrap_ci, iqm

optuna = pytest.importorskip("optuna")

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
# A fast grid on the built-in set: 2 x 2 configurations, 2 seeds, 2 iterations per run.
GRID = ["--search", "clip_coef=0.1,0.3", "--search", "ent_coef=0,0.03"]
FAST = ["--seeds", "2", "--iterations", "2", "--num-episodes", "16", "--hidden-size", "16"]


# --- IQM and CI against hand-computed values -------------------------------------------------


def test_iqm_by_hand() -> None:
    assert iqm([1, 2, 3, 4, 100]) == pytest.approx(3.0)  # int(5/4) = 1 cut from each end
    assert iqm([1, 2, 3, 4]) == pytest.approx(2.5)  # middle two
    assert iqm([0.2, 0.0]) == pytest.approx(0.1)  # fewer than 4 seeds: nothing cut
    assert iqm([7.0]) == 7.0
    # one wild seed moves the mean a lot and the IQM not at all
    assert iqm([10, 10, 10, 10, 10, 10, 10, -1000]) == pytest.approx(10.0)


def test_bootstrap_ci_two_seeds_by_hand() -> None:
    # Resamples of [0, 1]: (0,0) -> 0, (0,1) and (1,0) -> 0.5, (1,1) -> 1, each 1/4 likely.
    # 2.5 % of the mass lies at 0 and 2.5 % at 1, so the 95 % interval is exactly [0, 1].
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    assert bootstrap_ci([5.0, 5.0, 5.0]) == (5.0, 5.0)
    assert bootstrap_ci([3.0]) == (3.0, 3.0)


def test_bootstrap_ci_matches_exhaustive_enumeration() -> None:
    scores = [1.0, 2.0, 3.0, 10.0]
    # All 4^4 equally likely resamples; the IQM of each is the mean of its middle two.
    stats = sorted(
        np.mean(sorted(pick)[1:3]) for pick in itertools.product(scores, repeat=len(scores))
    )
    exact = np.percentile(stats, [2.5, 97.5])
    lo, hi = bootstrap_ci(scores, reps=50_000)
    assert lo == pytest.approx(exact[0], abs=0.05)
    assert hi == pytest.approx(exact[1], abs=0.05)
    assert bootstrap_ci(scores) == bootstrap_ci(scores)  # fixed generator: reproducible


# --- --search --------------------------------------------------------------------------------


def test_parse_grid_and_ranges() -> None:
    base = Config()
    axes = parse_search(["clip_coef=0.1,0.3", "ent-coef=0,0.03", "policy=lstm,transformer"], base)
    assert is_grid(axes)
    assert [a.values for a in axes] == [(0.1, 0.3), (0.0, 0.03), ("lstm", "transformer")]
    assert len(grid_points(axes)) == 8
    axes = parse_search(["learning_rate=log(1e-4,1e-2)", "update_epochs=int(1,8)"], base)
    assert not is_grid(axes)
    assert (axes[0].kind, axes[0].low, axes[0].high) == ("log", 1e-4, 1e-2)
    assert (axes[1].kind, axes[1].low, axes[1].high) == ("int", 1, 8)


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("clip_coef", "expected NAME=V1,V2"),
        ("clip_coeff=0.1,0.2", "not a setting"),
        ("policy=float(0,1)", "takes a list of values, not a range"),
        ("anneal_lr=int(0,1)", "takes a list of values"),
        ("clip_coef=log(0,1)", "must be > 0.0"),
        ("learning_rate=log(0.1,0.01)", "low bound must be below"),
        ("hidden_size=float(8,64)", "takes whole numbers"),
        ("clip_coef=gauss(0,1)", "unknown range"),
        ("clip_coef=0.1,,0.2", "empty value"),
        ("clip_coef=0.1,abc", "must be a number"),
        ("seed=0,1", "cannot be searched"),
        ("policy=lstm,gru", "must be one of"),
    ],
)
def test_bad_search_is_a_usage_error(text: str, expect: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_search([text], Config())
    assert expect in info.value.message


# --- CLI: bad input, one line, no traceback --------------------------------------------------


def _one_line(result: Any, code: int, expect: str) -> None:
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert expect in lines[0] and "hint:" in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "expect"),
    [
        (["--search", "clip_coef"], 2, "expected NAME=V1,V2"),
        (["--search", "nope=1,2"], 2, "'nope' is not a setting"),
        (["--search", "policy=log(1,2)"], 2, "takes a list of values, not a range"),
        (["--search", "learning_rate=log(1e-4,1e-2)"], 2, "needs --trials"),
        ([], 2, "needs --search"),
        (["--search", "clip_coef=0.1", "--storage", "postgresql://u:pw@127.0.0.1:9/x"], 1,
         "cannot open the storage"),
        (["--search", "clip_coef=0.1", "--storage", "nosuchdb://x"], 1, "cannot open"),
        (["--report", "--study", "nope"], 1, "does not exist"),
    ],
)  # fmt: skip
def test_sweep_bad_input(tmp_path: Path, monkeypatch: Any, args: list[str], code: int,
                         expect: str) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["sweep", *args])
    _one_line(result, code, expect)
    assert "pw" not in result.stderr  # the password is masked
    assert not (tmp_path / "sweeps").exists()  # a report on nothing creates nothing


def test_report_unknown_and_empty_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="empty", storage=url)
    study.set_user_attr("ppoqa_sweep", {"axes": [], "seeds": 2, "base": Config().to_dict()})
    result = runner.invoke(app, ["sweep", "--report", "--storage", url, "--study", "other"])
    _one_line(result, 1, "no such study")
    assert "empty" in result.stderr  # the hint names the studies that are there
    result = runner.invoke(
        app, ["sweep", "--report", "--storage", url, "--study", "empty", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["configurations"] == [] and result.stderr == ""
    result = runner.invoke(app, ["sweep", "--report", "--storage", url, "--study", "empty"])
    assert result.exit_code == 0 and "no configurations yet" in result.stdout


def test_range_search_samples_trials_configurations(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["sweep", "--search", "learning_rate=log(1e-3,1e-2)", "--search",
            "update_epochs=int(1,4)", "--trials", "3", *FAST, "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # --json: one document, no progress, no warnings
    configs = json.loads(result.stdout)["configurations"]
    assert len(configs) == 3
    for c in configs:
        assert 1e-3 <= c["params"]["learning_rate"] <= 1e-2
        assert c["params"]["update_epochs"] in (1, 2, 3, 4)
        assert c["state"] in ("complete", "pruned") and c["scores"]
    # a second worker on the finished study has nothing left to do
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and len(json.loads(again.stdout)["configurations"]) == 3
    # joining with other settings is refused
    other = runner.invoke(app, [*args[:-1], "--seeds", "3"])
    _one_line(other, 1, "was created with other settings")


def test_one_worker_range_search_repeats(tmp_path: Path, monkeypatch: Any) -> None:
    # Runs are deterministic per seed, and so is the sampler of the worker that creates the
    # study: the same search in a new folder proposes the same configurations and scores.
    search = ["--search", "learning_rate=log(1e-3,1e-2)", "--search", "clip_coef=float(0.1,0.3)"]
    args = ["sweep", *search, "--trials", "3", *FAST, "--seeds", "1", "--json"]
    found = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        configs = json.loads(result.stdout)["configurations"]
        found.append(sorted((c["params"]["learning_rate"], c["scores"][0]) for c in configs))
    assert len(found[0]) == 3 and found[0] == found[1]


def test_plot_aggregates_runs_and_studies(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["sweep", "--search", "clip_coef=0.1,0.3", *FAST, "-q"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["plot", "--study", "clip_coef", "--json"])
    assert result.exit_code == 0, result.output
    [path] = json.loads(result.stdout)["paths"]
    assert path.endswith("sweeps/clip_coef/sweep.png")
    assert Path(path).read_bytes().startswith(b"\x89PNG")
    # plain run directories (here the sweep's) group by their settings without the seed
    from ppo_cli.sweep.figures import find_runs, groups_from_runs

    groups = groups_from_runs([Path("sweeps/clip_coef")])
    assert sorted(g.label for g in groups) == ["clip_coef=0.1", "clip_coef=0.3"]
    assert all(len(g.runs) == 2 and len(g.scores) == 2 for g in groups)
    assert len(find_runs([Path("sweeps")])) == 4
    result = runner.invoke(app, ["plot", "--runs", "sweeps/clip_coef", "--out", "c.svg"])
    assert result.exit_code == 0 and Path("c.svg").read_text().lstrip().startswith("<?xml")
    _one_line(runner.invoke(app, ["plot", "--runs", "nowhere"]), 1, "not a directory")
    _one_line(runner.invoke(app, ["plot", "--runs", "sweeps", "--study", "x"]), 2, "cannot be")


# --- real workers sharing a study ------------------------------------------------------------


def _sweep(cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "ppo_cli", "sweep", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _report(cwd: Path, storage: str, study: str) -> dict[str, Any]:
    proc = _sweep(cwd, "--report", "--storage", storage, "--study", study, "--json")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    return json.loads(stdout)


def _two_workers_split_the_grid(tmp_path: Path, storage: str) -> None:
    study = f"grid-{uuid.uuid4().hex[:8]}"
    args = [*GRID, *FAST, "--storage", storage, "--study", study, "--out", str(tmp_path / "o")]
    procs = [_sweep(tmp_path, *args) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, stderr) in zip(procs, outs, strict=True):
        assert p.returncode == 0, stderr
    rep = _report(tmp_path, storage, study)
    configs = rep["configurations"]
    assert len(configs) == 4
    assert sorted((c["params"]["clip_coef"], c["params"]["ent_coef"]) for c in configs) == [
        (0.1, 0.0), (0.1, 0.03), (0.3, 0.0), (0.3, 0.03)
    ]  # fmt: skip
    for c in configs:
        assert c["state"] == "complete" and len(c["scores"]) == 2 and len(c["trials"]) == 1
        assert c["iqm"] == pytest.approx(np.mean(c["scores"]))
        assert c["ci"][0] <= c["iqm"] <= c["ci"][1]
        assert all(Path(r, "config.yaml").is_file() for r in c["runs"])
    # Every configuration trained exactly once: each worker's stderr names the trials it took.
    taken = [ln.split()[1] for _, e in outs for ln in e.splitlines() if ln.endswith(": start")]
    assert sorted(taken) == ["0", "1", "2", "3"], outs
    # Best first
    iqms = [c["iqm"] for c in configs]
    assert iqms == sorted(iqms, reverse=True)
    # and the study holds those four trials only: no point was claimed twice
    from ppo_cli.sweep.storage import open_storage

    opened = open_storage(storage, create=False)
    trials = optuna.load_study(study_name=study, storage=opened.storage).get_trials()
    assert len(trials) == 4 and {t.state.name for t in trials} == {"COMPLETE"}
    assert all("clip_coef" in o for o, _ in outs)  # each worker ends with the report table


def test_two_workers_split_a_grid_on_sqlite(tmp_path: Path) -> None:
    _two_workers_split_the_grid(tmp_path, f"sqlite:///{tmp_path / 'shared.db'}")


def test_two_workers_split_a_grid_on_a_journal_file(tmp_path: Path) -> None:
    _two_workers_split_the_grid(tmp_path, f"journal:{tmp_path / 'shared.log'}")


def test_two_workers_split_a_grid_on_postgresql(tmp_path: Path) -> None:
    url = os.environ.get("PPOQA_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("PPOQA_REQUIRE_POSTGRES"):
            pytest.fail("PPOQA_REQUIRE_POSTGRES is set but PPOQA_TEST_POSTGRES_URL is not")
        pytest.skip("no PostgreSQL server (.ci/run starts one and sets PPOQA_TEST_POSTGRES_URL)")
    _two_workers_split_the_grid(tmp_path, url)


def test_workers_option_runs_processes_that_share_the_study(tmp_path: Path) -> None:
    args = ["--search", "clip_coef=0.1,0.3", *FAST, "--seeds", "1", "--workers", "2"]
    proc = _sweep(tmp_path, *args, "--study", "w")
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    tags = {ln.split()[0] for ln in stderr.splitlines() if ln.endswith(": start")}
    assert tags <= {"[w0]", "[w1]"} and tags  # lines name the worker process
    rep = _report(tmp_path, "sqlite:///sweeps/w/study.db", "w")
    assert [c["state"] for c in rep["configurations"]] == ["complete", "complete"]
    assert all(len(c["trials"]) == 1 for c in rep["configurations"])


def _wait_for(proc: subprocess.Popen[str], needle: str, timeout: float = 120) -> list[str]:
    """Read the worker's stderr until a line containing needle appears."""
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never appeared: {''.join(seen)}")


def test_ctrl_c_queues_the_configuration_again(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    # 150 iterations: long enough that seed 1 is still training when SIGINT arrives on a
    # fast machine (30 took about 1 s in CI, which let the configuration complete first).
    slow = ["--seeds", "2", "--iterations", "150", "--no-early-stop", "--save-every", "1",
            "--num-episodes", "16", "--hidden-size", "16"]  # fmt: skip
    args = ["--search", "clip_coef=0.1,0.3", *slow, "--storage", storage, "--study", "c"]
    proc = _sweep(tmp_path, *args)
    _wait_for(proc, "trial 0 seed 0:")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest
    assert "Traceback" not in rest and "queued again" in rest
    states = {
        c["params"]["clip_coef"]: c for c in _report(tmp_path, storage, "c")["configurations"]
    }
    assert states[0.1]["state"] == "waiting"  # failed, and queued again for a later worker
    assert states[0.3]["state"] == "waiting"
    # A later worker takes it: seed 0 is kept, seed 1 resumes from its checkpoint.
    again = _sweep(tmp_path, *args)
    _, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    assert "seed 0: " in stderr and "(kept," in stderr
    doc = _report(tmp_path, storage, "c")
    assert [c["state"] for c in doc["configurations"]] == ["complete", "complete"]
    assert all(len(c["scores"]) == 2 for c in doc["configurations"])


def test_sigkilled_worker_is_stale_then_retrained(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    # 300 iterations: the worker must still be training when it is killed (60 finished
    # inside the 1.5 s wait on CI's faster machine, so the trial was already complete), and
    # no stall rule: the built-in set is solved in a few iterations, and 40 more without
    # progress ended the run inside the wait once training got faster.
    slow = ["--seeds", "1", "--iterations", "300", "--no-early-stop", "--heartbeat", "1"]
    slow += ["--stall-iterations", "0"]
    args = ["--search", "clip_coef=0.2", *slow, "--storage", storage, "--study", "k"]
    proc = _sweep(tmp_path, *args)
    _wait_for(proc, "trial 0 clip_coef=0.2: start")
    time.sleep(1.5)
    proc.kill()
    proc.communicate(timeout=60)
    time.sleep(4)  # three missed heartbeats
    [config] = _report(tmp_path, storage, "k")["configurations"]
    assert config["state"] == "stale"
    # The next worker fails the stale trial (Optuna's heartbeat) and trains the configuration.
    fast = ["--search", "clip_coef=0.2", "--seeds", "1", "--heartbeat", "1"]
    again = _sweep(tmp_path, *fast, "--iterations", "300", "--no-early-stop",
                   "--stall-iterations", "0", "--storage", storage, "--study", "k",
                   "--json")  # fmt: skip
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    [config] = json.loads(stdout)["configurations"]
    assert config["state"] == "complete" and config["trials"] == [0, 1]


def test_sqlite_claims_are_exclusive(tmp_path: Path) -> None:
    """Four processes race to claim 60 queued trials: each is claimed once (BEGIN IMMEDIATE;
    benchmarks/sweep_claims.py shows the duplicates without it)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sweep_claims.py"), "--trials", "60",
         "--procs", "4", "--dir", str(tmp_path), "--only", "serialized"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads(proc.stdout)["results"]
    assert row["claims"] == row["distinct"] == 60


def test_env_kwargs_reach_the_env_of_every_run(tmp_path: Path, monkeypatch: Any) -> None:
    # train's --env-kwargs is a sweep flag too; it must reach each run's env, not be dropped.
    monkeypatch.chdir(tmp_path)
    args = ["sweep", "--env", "tests.user_envs:Corridor-v0", "--env-kwargs", "length=6",
            "--search", "clip_coef=0.1,0.3", "--seeds", "1", "--timesteps", "256",
            "--num-envs", "2", "--num-steps", "64", "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    configs = json.loads(result.stdout)["configurations"]
    assert len(configs) == 2
    runs = sorted(p.parent for p in (tmp_path / "sweeps").rglob("config.yaml"))
    assert len(runs) == 2
    for run in runs:
        ckpt = load_checkpoint(run)
        assert ckpt["obs_dim"] == 6 and ckpt["env_kwargs"] == {"length": 6}, run
        assert read_config(run)["env_kwargs"] == {"length": 6}
