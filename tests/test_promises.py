"""Nothing hangs, nothing of the user's is touched, stdout stays data: each class of broken
promise from the second hostile pass, run as a real `python -m ppo_cli` child process with a
timeout, so that a hang fails the test instead of stalling the suite.

docs/reliability.md lists each promise with the tests here that keep it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ppo_cli.config import Config
from ppo_cli.core.trainer import Callbacks, train

ROOT = Path(__file__).resolve().parents[1]
TEXT = ["train", "--iterations", "2", "--num-episodes", "8", "--hidden-size", "8"]
GYM = ["--timesteps", "32", "--num-envs", "2", "--num-steps", "16", "--num-minibatches", "2"]

REWARDS = """\
import os, sys, time

def prints(question, answer, target):
    print("reward says hi")
    sys.stdout.write("and writes\\n")
    os.write(1, b"and writes to fd 1\\n")
    print("and to sys.__stdout__", file=sys.__stdout__)
    return 1.0

def exits(question, answer, target):
    sys.exit(0)

def exits_3(question, answer, target):
    sys.exit(3)

def blocks(question, answer, target):
    time.sleep(10000)
    return 0.0

def huge(question, answer, target):
    return 1e308

def swallows(question, answer, target):
    try:
        time.sleep(10000)
    except Exception:
        pass
    return 0.0
"""

ENVS = """\
import os, sys, time
import gymnasium as gym
import numpy as np

print("env module says hi at import")


class Endless(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        if os.environ.get("ENV_PRINTS"):
            print("step says hi")
        if os.environ.get("ENV_EXITS"):
            sys.exit(0)
        if os.environ.get("ENV_BLOCKS"):
            time.sleep(10000)
        return np.zeros(2, np.float32), 1.0, False, False, {}


class NanObs(Endless):
    def step(self, action):
        return np.full(2, np.nan, np.float32), 1.0, False, False, {}


class OffSpace(Endless):
    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.full(2, 5.0, np.float32), {}


gym.register("OffSpace-v0", entry_point=OffSpace, max_episode_steps=5)
gym.register("Endless-v0", entry_point=Endless)
gym.register("NanObs-v0", entry_point=NanObs, max_episode_steps=50)
gym.register("Bounded-v0", entry_point=Endless, max_episode_steps=5)
"""


def ppoqa(
    *args: str,
    cwd: Path,
    timeout: float = 120,
    stdout: Any = subprocess.PIPE,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ppo_cli", *args],
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        env=_env(env),
    )


def _env(more: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PPOQA_DEBUG": "", "PYTHONPATH": str(ROOT), **(more or {})}


def one_line(stderr: str) -> str:
    """The single error line on stderr (progress lines ignored); no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("ppoqa: ")]
    errors = [line for line in errors if not line.startswith("ppoqa: warning")]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.fixture
def user(tmp_path: Path) -> Path:
    (tmp_path / "r.py").write_text(REWARDS)
    (tmp_path / "envs.py").write_text(ENVS)
    return tmp_path


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("text") / "run"
    train(Config(iterations=1, num_episodes=8, hidden_size=8), run, Callbacks())
    return run


# --- 1. nothing hangs -------------------------------------------------------------------------


def test_env_whose_episodes_never_end_trains_and_evaluates(user: Path) -> None:
    """Greedy evaluation (train's last step, and `ppoqa eval`) caps an env without a time
    limit, and says so."""
    proc = ppoqa("train", "--env", "envs:Endless-v0", *GYM, "--run-dir", "run", cwd=user)
    assert proc.returncode == 0, proc.stderr
    assert "no time limit" in proc.stderr and "1000 steps" in proc.stderr
    proc = ppoqa("eval", "--run", "run", "--episodes", "1", "--json", cwd=user)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["lengths"] == [1000]
    assert "no time limit" in proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_blocking_reward_fn_stops_on_one_signal(user: Path, signum: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ppo_cli", *TEXT, "--reward-fn", "r.py:blocks", "--run-dir", "run"],
        cwd=user, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (user / "run" / "checkpoint.pt").exists():  # iteration 1 has started
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - sent < 15
    assert proc.returncode == 128 + signum
    line = one_line(stderr)
    assert "reward function blocks" in line and "resume" in line


@pytest.mark.parametrize("name", ["blocks", "swallows"])
def test_blocking_reward_fn_meets_the_time_limit(user: Path, name: str) -> None:
    proc = ppoqa(
        *TEXT, "--reward-fn", f"r.py:{name}", "--run-dir", "run", cwd=user, timeout=60,
        env={"PPOQA_USER_CODE_TIMEOUT": "1"},
    )  # fmt: skip
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert f"reward function {name} did not return within 1 s" in line
    assert "PPOQA_USER_CODE_TIMEOUT" in line


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_blocking_env_step_meets_the_time_limit(user: Path, mode: str) -> None:
    """Also with the env's workers in subprocesses (async), whose close would otherwise wait
    for the blocked call forever."""
    proc = ppoqa(
        "train", "--env", "envs:Bounded-v0", *GYM, "--vector-mode", mode, cwd=user, timeout=90,
        env={"PPOQA_USER_CODE_TIMEOUT": "1", "ENV_BLOCKS": "1"},
    )  # fmt: skip
    assert proc.returncode == 1
    assert "envs:Bounded-v0: the env's step() did not return within 1 s" in one_line(proc.stderr)


# --- 4. stdout stays data; exit codes tell the truth ------------------------------------------


def test_reward_fn_prints_never_reach_stdout(user: Path) -> None:
    proc = ppoqa(*TEXT, "--reward-fn", "r.py:prints", "--json", cwd=user)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["iterations"] == 2  # one document, nothing else
    assert "reward says hi" in proc.stderr and "and writes to fd 1" in proc.stderr
    assert "and to sys.__stdout__" in proc.stderr


def test_env_module_prints_never_reach_stdout(user: Path) -> None:
    proc = ppoqa(
        "train", "--env", "envs:Bounded-v0", *GYM, "--json", cwd=user, env={"ENV_PRINTS": "1"}
    )
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)
    assert "env module says hi at import" in proc.stderr and "step says hi" in proc.stderr


@pytest.mark.parametrize(
    "args, env, named",
    [
        (["--reward-fn", "r.py:exits"], {}, "reward function exits called sys.exit(0)"),
        (["--reward-fn", "r.py:exits_3"], {}, "reward function exits_3 called sys.exit(3)"),
        (["--env", "envs:Bounded-v0"], {"ENV_EXITS": "1"}, "the env's step() called sys.exit(0)"),
    ],
    ids=["reward-exit-0", "reward-exit-3", "env-step-exit-0"],
)
def test_sys_exit_in_user_code_is_an_error_naming_it(
    user: Path, args: list[str], env: dict[str, str], named: str
) -> None:
    argv = ["train", *GYM, *args] if "--env" in args else [*TEXT, *args]
    proc = ppoqa(*argv, "--json", cwd=user, env=env)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert named in doc["error"]["message"]


@pytest.mark.parametrize(
    "args",
    [
        ["eval", "--run", "{run}"],
        ["eval", "--run", "{run}", "--json"],
        ["ask", "--run", "{run}", "What is the capital of France?"],
        ["explain-gae"],
        ["explain-gae", "--json"],
        ["--version"],
        ["train", "--iterations", "1", "--num-episodes", "8", "--json", "--run-dir", "new"],
    ],
    ids=lambda a: " ".join(a),
)
@pytest.mark.parametrize("how", ["closed", "full"])
def test_closed_or_full_stdout_is_one_line(
    text_run: Path, tmp_path: Path, args: list[str], how: str
) -> None:
    argv = [a.replace("{run}", str(text_run)) for a in args]
    if how == "closed":
        proc = subprocess.run(
            [sys.executable, "-m", "ppo_cli", *argv], cwd=tmp_path, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, timeout=120, env=_env(),
            preexec_fn=lambda: os.close(1),
        )  # fmt: skip
    else:
        with open("/dev/full", "w") as full:
            proc = ppoqa(*argv, cwd=tmp_path, stdout=full)
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert "stdout" in line
    assert proc.stderr.count("\n") <= 3  # the error line, at most a run header and its warning


@pytest.mark.parametrize(
    "args, whole",
    [
        (["eval", "--run", "{run}"], "What is the capital of France?"),
        (["explain-gae"], "γλ(1−d)·A_{t+1}"),
        (["explain-clip"], "ratio"),
        (["explain-reward"], "Warsaw"),
    ],
    ids=lambda a: a[0] if isinstance(a, list) else "",
)
def test_narrow_columns_never_cut_data_on_a_pipe(
    text_run: Path, tmp_path: Path, args: list[str], whole: str
) -> None:
    argv = [a.replace("{run}", str(text_run)) for a in args]
    for columns in ("40", "20"):
        proc = ppoqa(*argv, cwd=tmp_path, env={"COLUMNS": columns})
        assert proc.returncode == 0, proc.stderr
        assert whole in proc.stdout
        assert "…" not in proc.stdout


# --- 2. files the user made are never touched -------------------------------------------------

SWEEP = ["sweep", "--search", "clip_coef=0.2", "--seeds", "1", "--iterations", "1",
         "--num-episodes", "8", "--hidden-size", "8"]  # fmt: skip


def test_journal_storage_on_a_users_file_is_refused(tmp_path: Path) -> None:
    notes = tmp_path / "u.txt"
    notes.write_text("my notes\n")
    proc = ppoqa(*SWEEP, "--storage", "journal:u.txt", "--out", "o", cwd=tmp_path)
    assert proc.returncode == 1
    assert "is not an Optuna journal" in one_line(proc.stderr)
    assert notes.read_text() == "my notes\n"


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "--report", "--storage", "sqlite:///u2.db", "--study", "x"],
        ["plot", "--study", "x", "--storage", "sqlite:///u2.db"],
        [*SWEEP, "--storage", "sqlite:///u2.db", "--out", "o"],
    ],
    ids=["report", "plot", "sweep"],
)
def test_a_users_sqlite_database_gets_no_optuna_tables(tmp_path: Path, args: list[str]) -> None:
    import sqlite3

    db = tmp_path / "u2.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE mine (x INTEGER)")
    before = db.read_bytes()
    proc = ppoqa(*args, cwd=tmp_path)
    assert proc.returncode == 1
    assert "holds no Optuna study" in one_line(proc.stderr)
    assert db.read_bytes() == before


def test_a_dataset_key_given_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(
        "pairs:\n  - question: Q\n    answer: a\n    answer: b\n", encoding="utf-8"
    )
    proc = ppoqa("train", "--iterations", "1", "--dataset", "d.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert "d.yaml: line 4: key 'answer' is given twice" in line and "line 3" in line


# --- 3. work is not thrown away -----------------------------------------------------------------

SLOW = "import time\n\ndef slow(q, a, t):\n    time.sleep(0.02)\n    return float(a == t)\n"


def test_an_interrupted_sweep_resumes_its_seed(tmp_path: Path) -> None:
    """Ctrl-C in a sweep, then the same command: the seed continues from its checkpoint in
    its own folder (no s0-2 trained from scratch)."""
    (tmp_path / "slow.py").write_text(SLOW)
    args = ["sweep", "--search", "clip_coef=0.2", "--seeds", "1", "--iterations", "12",
            "--num-episodes", "16", "--hidden-size", "8", "--no-early-stop",
            "--reward-fn", "slow.py:slow", "--out", "o"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "ppo_cli", *args], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        metrics: list[Path] = []
        while not metrics or len(metrics[0].read_text().splitlines()) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
            metrics = list((tmp_path / "o").glob("*/s0/metrics.jsonl"))
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    done_before = len(metrics[0].read_text().splitlines())
    assert done_before < 12
    again = ppoqa(*args, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr
    seeds = sorted(p.name for p in metrics[0].parent.parent.iterdir())
    assert seeds == ["s0"]
    records = [json.loads(line) for line in metrics[0].read_text().splitlines()]
    assert [r["iteration"] for r in records] == list(range(1, 13))


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_storage_is_refused_before_training(tmp_path: Path, url: str) -> None:
    proc = ppoqa(*SWEEP, "--storage", url, "--out", "o", cwd=tmp_path)
    assert proc.returncode == 1
    assert "in-memory SQLite" in one_line(proc.stderr)
    assert not (tmp_path / "o").exists()


def test_an_interrupted_sft_resumes_to_the_same_weights(tmp_path: Path) -> None:
    import torch

    from ppo_cli.core.rundir import load_checkpoint

    args = ["sft", "--epochs", "1500", "--eval-every", "500", "-q"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ppo_cli", *args, "--run-dir", "cut"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    metrics = tmp_path / "cut" / "metrics.jsonl"
    try:
        deadline = time.monotonic() + 60
        while not metrics.exists() or len(metrics.read_text().splitlines()) < 5:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    line = one_line(stderr)
    assert "ppoqa sft --resume cut" in line
    assert len(metrics.read_text().splitlines()) < 1500
    # the folder is refused as a new run, with the resume named; new settings are refused too
    assert "--resume" in one_line(ppoqa(*args, "--run-dir", "cut", cwd=tmp_path).stderr)
    changed = ppoqa("sft", "--resume", "cut", "--epochs", "9", cwd=tmp_path)
    assert changed.returncode == 2
    resumed = ppoqa("sft", "--resume", "cut", "-q", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["epochs"] == 1500
    whole = ppoqa(*args, "--run-dir", "whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    a, b = load_checkpoint(tmp_path / "cut"), load_checkpoint(tmp_path / "whole")
    assert all(torch.equal(a["policy"][k], b["policy"][k]) for k in b["policy"])
    loss = [json.loads(x)["loss"] for x in metrics.read_text().splitlines()]
    whole_loss = [json.loads(x)["loss"] for x in (tmp_path / "whole/metrics.jsonl").open()]
    assert loss == whole_loss
    finished = ppoqa("sft", "--resume", "cut", cwd=tmp_path)
    assert "already finished all 1500 epochs" in one_line(finished.stderr)


# --- 4b. what used to be "unexpected ..." is a named problem ----------------------------------


def test_reward_fn_beyond_float32_is_named(user: Path) -> None:
    proc = ppoqa(*TEXT, "--reward-fn", "r.py:huge", cwd=user)
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert "reward function huge" in line and "returned 1e+308" in line
    assert "unexpected" not in line


def test_env_returning_nan_observations_is_named(user: Path) -> None:
    proc = ppoqa("train", "--env", "envs:NanObs-v0", *GYM, cwd=user)
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert "envs:NanObs-v0: the env's step() returned an observation holding nan" in line


@pytest.mark.parametrize(
    "text, named",
    [
        ('pairs:\n  - question: "a \\ud800 b?"\n    answer: b\n', "lone surrogate (U+D800)"),
        (
            "pairs:\n  - question: " + " ".join(["w"] * 3000) + "\n    answer: b\n",
            "the longest question plus its answer is 3,006 tokens",
        ),
    ],
    ids=["surrogate", "long-question"],
)
def test_hostile_datasets_are_named(tmp_path: Path, text: str, named: str) -> None:
    (tmp_path / "d.yaml").write_text(text, encoding="utf-8")
    args = ["--num-episodes", "64", "--hidden-size", "1024", "--dataset", "d.yaml"]
    proc = ppoqa("train", "--iterations", "1", *args, cwd=tmp_path)
    assert proc.returncode == 1
    assert named in one_line(proc.stderr)


def test_record_onto_a_full_disk_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full or read-only filesystem cannot be made in a test process without privileges:
    the write fails the way ENOSPC does, under CliRunner."""
    import errno

    from typer.testing import CliRunner

    from ppo_cli.cli import app
    from ppo_cli.gym import record as gym_record

    run = tmp_path / "run"
    cfg = Config(env="CartPole-v1", policy="mlp", timesteps=64, num_envs=2, num_steps=32)
    train(cfg, run, Callbacks())

    def full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gym_record, "_write_frames", full)
    out = tmp_path / "ep.gif"
    result = CliRunner().invoke(app, ["eval", "--run", str(run), "--record", str(out)])
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert f"--record {out}: writing the animation failed (No space left on device)" in line
    assert not out.exists() and not list(tmp_path.glob(".ppoqa-*"))


# --- 5. smaller promises ----------------------------------------------------------------------


def test_run_and_sweep_folders_are_told_apart(text_run: Path, tmp_path: Path) -> None:
    sweep = ppoqa(*SWEEP, "--out", "sw", cwd=tmp_path, timeout=300)
    assert sweep.returncode == 0, sweep.stderr
    into_sweep = ppoqa("train", "--iterations", "1", "--run-dir", "sw", cwd=tmp_path)
    assert into_sweep.returncode == 1
    assert "is a ppoqa sweep folder, not a run directory" in one_line(into_sweep.stderr)
    into_run = ppoqa(*SWEEP, "--out", str(text_run), cwd=tmp_path)
    assert into_run.returncode == 1
    assert "is a ppoqa run directory, not a sweep folder" in one_line(into_run.stderr)
    assert sorted(p.name for p in text_run.iterdir() if p.suffix == ".db") == []


def test_gymnasium_warnings_honour_no_color(user: Path) -> None:
    proc = ppoqa("train", "--env", "envs:OffSpace-v0", *GYM, cwd=user, env={"NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "not within the observation space" in proc.stderr
    assert "\x1b[" not in proc.stderr


@pytest.mark.parametrize(
    "args, exit_code, named",
    [
        (
            ["train", "--env", "CartPole-v1", "--init-from", "{run}"],
            2,
            "--init-from is for text QA",
        ),
        (["sft", "--batch-size", "0"], 2, "e.g. --batch-size 8"),
        (["sft", "--eval-every", "0"], 2, "e.g. --eval-every 5"),
        (["train", "--env", "envs:bounded-v0"], 1, "did you mean envs:Bounded-v0?"),
    ],
    ids=["init-from-gym", "sft-batch-size", "sft-eval-every", "module-env-case"],
)
def test_errors_blame_what_was_typed(
    user: Path, text_run: Path, args: list[str], exit_code: int, named: str
) -> None:
    proc = ppoqa(*[a.replace("{run}", str(text_run)) for a in args], cwd=user)
    assert proc.returncode == exit_code
    assert named in one_line(proc.stderr)


def test_env_kwargs_hash_is_text_not_a_comment() -> None:
    from ppo_cli.gym.envs import parse_env_kwargs

    got = parse_env_kwargs(["mode=# comment", "b=a # b", 'c="x # y"', "d=8x8", "e=null"])
    assert got == {"mode": "# comment", "b": "a # b", "c": "x # y", "d": "8x8", "e": None}


def test_reliability_page_names_every_promise_test() -> None:
    """docs/reliability.md lists each promise with its test: a test here it does not name
    is a promise the page does not tell."""
    import re

    page = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    tests = re.findall(r"^def (test_\w+)", Path(__file__).read_text(), flags=re.M)
    missing = [
        t for t in tests if t not in page and t != "test_reliability_page_names_every_promise_test"
    ]
    assert not missing, f"docs/reliability.md does not name {missing}"
