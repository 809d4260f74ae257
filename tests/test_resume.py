"""Ctrl-C during training saves a checkpoint; --resume continues to the very same numbers."""

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
import torch
from typer.testing import CliRunner

from ppo_cli.cli import app
from ppo_cli.config import Config
from ppo_cli.core.rundir import LOCK, METRICS, load_checkpoint
from ppo_cli.core.session import resume_config
from ppo_cli.core.trainer import Callbacks, train
from ppo_cli.errors import TrainingInterrupted

ROOT = Path(__file__).resolve().parents[1]
BASE = {"num_episodes": 16, "hidden_size": 16, "target_accuracy": None, "iterations": 6}


def metrics(run: Path) -> list[dict[str, Any]]:
    """Every metrics.jsonl field except the clock."""
    rows = [json.loads(line) for line in (run / METRICS).read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]


def summary(result: Any) -> dict[str, Any]:
    return {k: v for k, v in result.to_dict().items() if k not in ("wall_seconds", "run_dir")}


class StopAt(Callbacks):
    """Raises KeyboardInterrupt like a Ctrl-C would: after iteration N, or inside its eval."""

    def __init__(self, iteration: int, where: str = "on_iteration") -> None:
        self.iteration, self.where = iteration, where

    def on_iteration(self, record: dict[str, Any]) -> None:
        if self.where == "on_iteration" and record["iteration"] == self.iteration:
            raise KeyboardInterrupt

    def on_eval(self, iteration: int, results: list[Any]) -> None:
        if self.where == "on_eval" and iteration == self.iteration:
            raise KeyboardInterrupt


def assert_same_state(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    for key, tensor in ca["policy"].items():
        assert torch.equal(tensor, cb["policy"][key]), key
    assert ca["counters"]["iteration"] == cb["counters"]["iteration"]
    assert torch.equal(ca["rng"]["torch"], cb["rng"]["torch"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """Uninterrupted runs, one per setting below, trained once."""
    out = {}
    for name, extra in SETTINGS.items():
        run = tmp_path_factory.mktemp(name) / "run"
        out[name] = (run, summary(train(Config(**BASE, **extra), run, Callbacks())))
    return out


SETTINGS: dict[str, dict[str, Any]] = {
    "lstm": {"eval_every": 2, "save_every": 4},
    "transformer-anneal": {"policy": "transformer", "anneal_lr": True, "save_every": 0},
}


@pytest.mark.parametrize("name", list(SETTINGS))
@pytest.mark.parametrize(("stop", "where", "saved"), [(3, "on_iteration", 3), (6, "on_eval", 4)])
def test_interrupt_then_resume_gives_identical_metrics(
    tmp_path: Path,
    reference: dict[str, tuple[Path, dict]],
    name: str,
    stop: int,
    where: str,
    saved: int,
) -> None:
    extra = SETTINGS[name]
    if extra["save_every"] == 0:  # only the start and the interrupt are saved
        saved = saved if where == "on_iteration" else 0
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as info:
        train(Config(**BASE, **extra), run, StopAt(stop, where))
    err = info.value
    assert err.exit_code == 130
    assert f"resume with `ppoqa train --resume {run}`" in err.hint
    assert load_checkpoint(run)["iteration"] == saved
    assert not (run / LOCK).exists()

    result = train(resume_config(run, {}), run, Callbacks(), resume=True)

    ref_run, ref_summary = reference[name]
    assert metrics(run) == metrics(ref_run)
    assert summary(result) == ref_summary
    assert_same_state(run, ref_run)


def test_interrupt_message_says_what_was_saved(tmp_path: Path) -> None:
    cfg = Config(**{**BASE, "save_every": 2})
    with pytest.raises(TrainingInterrupted, match="after iteration 3; checkpoint and metrics"):
        train(cfg, tmp_path / "a", StopAt(3))
    with pytest.raises(
        TrainingInterrupted, match="during iteration 3; the checkpoint of iteration 2"
    ):
        train(cfg, tmp_path / "b", StopAt(3, "on_eval"))
    assert len(metrics(tmp_path / "b")) == 2


def test_ctrl_c_after_the_last_iteration_points_at_eval_not_resume(tmp_path: Path) -> None:
    # --resume would refuse a run that finished all its iterations, so the hint must not send
    # the user there
    with pytest.raises(TrainingInterrupted) as info:
        train(Config(**BASE), tmp_path / "run", StopAt(BASE["iterations"]))
    assert "after its last iteration (6)" in info.value.message
    assert "--resume" not in info.value.hint
    assert f"ppoqa eval --run {tmp_path / 'run'}" in info.value.hint
    assert load_checkpoint(tmp_path / "run")["iteration"] == BASE["iterations"]


def test_resume_can_extend_a_finished_run(tmp_path: Path) -> None:
    short, long = tmp_path / "short", tmp_path / "long"
    train(Config(**{**BASE, "iterations": 3}), short, Callbacks())
    result = train(resume_config(short, {"iterations": 5}), short, Callbacks(), resume=True)
    ref = train(Config(**{**BASE, "iterations": 5}), long, Callbacks())
    assert metrics(short) == metrics(long)
    assert summary(result) == summary(ref)


class SignalAt(Callbacks):
    """Sends real SIGINTs to ourselves during iteration N's evaluation."""

    def __init__(self, iteration: int, count: int) -> None:
        self.iteration, self.count = iteration, count
        self.warnings: list[str] = []

    def on_eval(self, iteration: int, results: list[Any]) -> None:
        if iteration == self.iteration:
            for _ in range(self.count):
                signal.raise_signal(signal.SIGINT)

    def on_warning(self, message: str) -> None:
        self.warnings.append(message)


def test_first_ctrl_c_finishes_the_iteration_second_stops_at_once(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT)
    cfg = Config(**{**BASE, "save_every": 2})
    once = SignalAt(3, 1)
    with pytest.raises(TrainingInterrupted, match="after iteration 3"):
        train(cfg, tmp_path / "once", once)
    assert load_checkpoint(tmp_path / "once")["iteration"] == 3
    assert len(metrics(tmp_path / "once")) == 3
    assert any("Ctrl-C" in w for w in once.warnings)

    with pytest.raises(TrainingInterrupted, match="during iteration 3; the checkpoint of iter"):
        train(cfg, tmp_path / "twice", SignalAt(3, 2))
    assert load_checkpoint(tmp_path / "twice")["iteration"] == 2
    assert signal.getsignal(signal.SIGINT) is before  # our handler is gone again


def test_cli_interrupt_prints_resume_command_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ppo_cli.render.progress import RichCallbacks

    def stop_at_2(self: Any, record: dict[str, Any]) -> None:
        if record["iteration"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(RichCallbacks, "on_iteration", stop_at_2)
    run = tmp_path / "run"
    args = ["train", "--iterations", "4", "--num-episodes", "16", "--no-early-stop"]
    runner = CliRunner(env={"PPOQA_DEBUG": ""})
    result = runner.invoke(app, [*args, "-q", "--run-dir", str(run)])
    assert result.exit_code == 130
    assert result.stderr == (
        f"ppoqa: interrupted: training interrupted after iteration 2; checkpoint and metrics "
        f"are in {run} (hint: resume with `ppoqa train --resume {run}`)\n"
    )
    doc = json.loads(runner.invoke(app, [*args, "--json", "--run-dir", str(tmp_path / "j")]).stdout)
    assert doc["error"]["code"] == "interrupted"

    monkeypatch.undo()
    resumed = runner.invoke(app, ["train", "--resume", str(run), "--json"])
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["iterations"] == 4
    assert len(metrics(run)) == 4


def test_real_sigint_in_a_subprocess(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ppo_cli", "train", "--iterations", "100000", "--no-early-stop"]
    proc = subprocess.Popen(
        [*cmd, "--num-episodes", "8", "--save-every", "0", "-q", "--run-dir", str(run)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PPOQA_DEBUG": ""},
    )
    try:
        deadline = time.monotonic() + 60
        while not ((run / METRICS).is_file() and (run / METRICS).stat().st_size > 0):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = stderr.decode()
    assert proc.returncode == 130, text
    assert stdout == b""
    assert "Traceback" not in text
    assert text.splitlines()[-1].startswith("ppoqa: interrupted: training interrupted after")
    assert f"ppoqa train --resume {run}" in text
    done = len(metrics(run))
    assert load_checkpoint(run)["iteration"] == done >= 1
    assert not (run / LOCK).exists()


def test_resume_keeps_the_runs_meaning(tmp_path: Path) -> None:
    from ppo_cli.config import config_to_yaml
    from ppo_cli.errors import UsageError

    (tmp_path / "config.yaml").write_text(config_to_yaml(Config(iterations=5, seed=3)))
    assert resume_config(tmp_path, {"seed": 3, "iterations": 9}).iterations == 9  # no change
    for flag, value in (("seed", 4), ("learning_rate", 0.1), ("dataset", "x.yaml")):
        with pytest.raises(UsageError, match=f"--{flag.replace('_', '-')} cannot change"):
            resume_config(tmp_path, {flag: value})
    (tmp_path / "config.yaml").write_text(config_to_yaml(Config(iterations=5, anneal_lr=True)))
    with pytest.raises(UsageError, match="learning-rate schedule"):
        resume_config(tmp_path, {"iterations": 9})


def test_resuming_a_run_that_reached_its_target_says_so(tmp_path: Path) -> None:
    """A run that stopped at --target-accuracy is done: resume refuses instead of silently
    training one more iteration, and --no-early-stop continues it."""
    from ppo_cli.errors import RunError

    run = tmp_path / "run"
    first = train(Config(), run, Callbacks())  # the built-in set stops early at 100 %
    assert first.stopped_early
    with pytest.raises(RunError, match="already reached --target-accuracy") as info:
        train(resume_config(run, {}), run, Callbacks(), resume=True)
    assert "--no-early-stop" in info.value.hint
    assert len(metrics(run)) == first.iterations  # nothing was trained or overwritten
    more = train(
        resume_config(run, {"target_accuracy": None, "iterations": first.iterations + 2}),
        run,
        Callbacks(),
        resume=True,
    )
    assert more.iterations == first.iterations + 2


def test_a_finished_run_hints_the_length_that_would_continue_it(tmp_path: Path) -> None:
    from ppo_cli.errors import RunError

    run = tmp_path / "run"
    train(Config(**{**BASE, "iterations": 3}), run, Callbacks())
    with pytest.raises(RunError, match="finished all 3 iterations") as info:
        train(resume_config(run, {}), run, Callbacks(), resume=True)
    assert "--iterations 4" in info.value.hint
