"""Reliability: one error shape, safe checkpoints, NaN guards, run-directory lock and probe."""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from ppo_cli.cli import app
from ppo_cli.config import Config
from ppo_cli.core import rundir
from ppo_cli.core.rundir import (
    CHECKPOINT,
    LOCK,
    METRICS,
    load_checkpoint,
    prepare_run_dir,
    save_checkpoint,
)
from ppo_cli.core.trainer import Callbacks, train
from ppo_cli.errors import RunError, TrainingError

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "make_bad_inputs_table", ROOT / "tests" / "make_bad_inputs_table.py"
)
assert _spec is not None and _spec.loader is not None
table = importlib.util.module_from_spec(_spec)
sys.modules["make_bad_inputs_table"] = table
_spec.loader.exec_module(table)

TINY = {"num_episodes": 8, "hidden_size": 8, "target_accuracy": None}


def tiny(**kw: Any) -> Config:
    return Config(**{**TINY, **kw})


# --- one error shape, for every bad input in the table ---------------------------------------


@pytest.fixture(scope="module")
def outcomes() -> list[tuple[Any, Any]]:
    """Every case once, in fresh folders (also what the docs table is rendered from)."""
    return table.run_all()


@pytest.mark.parametrize("index", range(len(table.CASES)), ids=[c.what for c in table.CASES])
def test_bad_input_gives_one_line_and_exit_code(
    index: int, outcomes: list[tuple[Any, Any]]
) -> None:
    case, out = outcomes[index]
    assert out.exception is None, f"{case.what}: escaped as {out.exception!r}"
    assert out.exit_code == case.exit_code, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("ppoqa: error: ")
    assert "(hint: " in lines[0]
    assert case.expect in lines[0]
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stdout == ""


@pytest.mark.parametrize("index", range(len(table.CASES)), ids=[c.what for c in table.CASES])
def test_bad_input_in_json_mode_is_one_json_object(index: int, tmp_path: Path) -> None:
    case = table.CASES[index]
    out = table.run_case(case, tmp_path, json_mode=True)
    assert out.exception is None
    assert out.exit_code == case.exit_code
    doc = json.loads(out.stdout)  # exactly one document: json.loads rejects trailing data
    assert set(doc) == {"error"}
    assert set(doc["error"]) == {"code", "message", "hint"}
    assert doc["error"]["hint"]
    assert out.stderr == ""
    assert not (tmp_path / table.MARKER).exists()


def test_pickled_code_never_runs(tmp_path: Path) -> None:
    for i, case in enumerate(table.CASES):
        if "pickled code" in case.what:
            cwd = tmp_path / str(i)
            cwd.mkdir()
            out = table.run_case(case, cwd)
            assert out.exit_code == 1
            assert not (cwd / table.MARKER).exists()
            assert not (Path.cwd() / table.MARKER).exists()


def test_docs_table_is_current(outcomes: list[tuple[Any, Any]]) -> None:
    expected = table.render(outcomes)
    assert table.DOC.is_file(), "run: python tests/make_bad_inputs_table.py"
    assert table.DOC.read_text(encoding="utf-8") == expected, (
        "docs/bad-inputs.md is stale: run python tests/make_bad_inputs_table.py"
    )


def test_debug_env_shows_the_real_exception(tmp_path: Path) -> None:
    result = CliRunner(env={"PPOQA_DEBUG": "1"}).invoke(
        app, ["eval", "--run", str(tmp_path / "nope")]
    )
    assert isinstance(result.exception, RunError)


def test_unexpected_exception_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def boom(*a: Any, **k: Any) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("ppo_cli.core.rundir.find_run", boom)
    result = CliRunner(env={"PPOQA_DEBUG": ""}).invoke(app, ["ask", "hi", "--run", "x"])
    assert result.exit_code == 1
    assert result.stderr == (
        "ppoqa: error: unexpected ZeroDivisionError: boom "
        "(hint: set PPOQA_DEBUG=1 for a traceback)\n"
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    train(tiny(iterations=2), run, Callbacks())
    return run


def test_broken_pipe_is_silent(trained: Path) -> None:
    """`ppoqa ask ... | head -0`: the reader is gone before we write; exit 0, no message."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    questions = "What is 2+2?\n" * 2000
    proc = subprocess.run(
        [sys.executable, "-m", "ppo_cli", "ask", "--run", str(trained)],
        input=questions.encode(),
        stdout=write_end,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PPOQA_DEBUG": ""},
        timeout=60,
    )
    os.close(write_end)
    assert proc.stderr.decode() == ""
    assert proc.returncode == 0


# --- checkpoints -----------------------------------------------------------------------------


def _payload(value: float) -> dict[str, Any]:
    return {"policy": {"w": torch.full((4,), value)}, "iteration": int(value)}


class _FailingFile(io.RawIOBase):
    """Writes part of the data, then fails like a full disk."""

    def __init__(self, real: Any, fail_with: BaseException) -> None:
        self.real, self.fail_with = real, fail_with

    def write(self, data: Any) -> int:
        self.real.write(bytes(data)[: len(data) // 2])
        self.real.flush()
        raise self.fail_with

    def __enter__(self) -> _FailingFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.real.close()


@pytest.mark.parametrize(
    "failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()]
)
def test_crash_mid_write_keeps_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    save_checkpoint(tmp_path, _payload(1.0))
    real_fdopen = os.fdopen
    monkeypatch.setattr(
        rundir.os, "fdopen", lambda fd, mode: _FailingFile(real_fdopen(fd, mode), failure)
    )
    with pytest.raises((RunError, KeyboardInterrupt)):
        save_checkpoint(tmp_path, _payload(2.0))
    monkeypatch.undo()
    loaded = load_checkpoint(tmp_path)
    assert loaded["iteration"] == 1
    assert torch.equal(loaded["policy"]["w"], torch.full((4,), 1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT]  # no temp file left


def test_checkpoint_round_trip_is_plain_torch(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _payload(3.0))
    outer = torch.load(tmp_path / CHECKPOINT, weights_only=True)  # readable without ppoqa
    assert outer["format_version"] == rundir.FORMAT_VERSION
    assert load_checkpoint(tmp_path)["iteration"] == 3


@pytest.mark.parametrize("maker", ["pickled_code_raw", "pickled_code_wrapped"])
def test_pickled_code_is_refused(tmp_path: Path, maker: str) -> None:
    marker = Path.cwd() / table.MARKER
    (tmp_path / CHECKPOINT).write_bytes(getattr(table, maker)(b""))
    with pytest.raises(RunError, match="pickled code"):
        load_checkpoint(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda raw: raw[: len(raw) // 3], "truncated or corrupted"),
        (lambda raw: raw[:-10], "truncated or corrupted"),
        (table.flip_middle_byte, "checksum mismatch"),
        (lambda raw: b"\x00" * 100, "not a torch zip file"),
        (lambda raw: b"", "empty"),
        (table.newer_format, "is newer than this ppoqa"),
    ],
)
def test_bad_checkpoint_bytes_give_clear_errors(tmp_path: Path, corrupt: Any, message: str) -> None:
    save_checkpoint(tmp_path, _payload(1.0))
    path = tmp_path / CHECKPOINT
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(RunError, match=message):
        load_checkpoint(tmp_path)


def test_checkpoint_of_wrong_shape_is_not_ours(tmp_path: Path) -> None:
    for doc in ([1, 2], {"format_version": "2"}, {"format_version": 2, "payload": "x"}):
        buf = io.BytesIO()
        torch.save(doc, buf)
        (tmp_path / CHECKPOINT).write_bytes(buf.getvalue())
        with pytest.raises(RunError, match="not a ppoqa checkpoint"):
            load_checkpoint(tmp_path)


# --- NaN / Inf -------------------------------------------------------------------------------


def _poison_update(monkeypatch: pytest.MonkeyPatch, at_call: int, how: str) -> None:
    import ppo_cli.core.trainer as trainer

    real = trainer.ppo_update
    calls = {"n": 0}

    def update(policy: Any, optimizer: Any, batch: Any, settings: Any, *hooks: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == at_call and how == "loss":
            batch.advantages = batch.advantages * float("nan")
        out = real(policy, optimizer, batch, settings, *hooks)
        if calls["n"] == at_call and how == "params":
            with torch.no_grad():
                next(policy.parameters()).view(-1)[0] = float("inf")
        return out

    monkeypatch.setattr(trainer, "ppo_update", update)


@pytest.mark.parametrize(
    ("how", "message"),
    [("params", "became NaN/Inf at iteration 3"), ("loss", "iteration 3: loss became nan")],
)
def test_nan_stops_training_and_keeps_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, message: str
) -> None:
    _poison_update(monkeypatch, 3, how)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=message) as info:
        train(tiny(iterations=5, save_every=2), run, Callbacks())
    assert "last good checkpoint (iteration 2)" in info.value.hint
    ckpt = load_checkpoint(run)
    assert ckpt["iteration"] == 2
    assert all(torch.isfinite(t).all() for t in ckpt["policy"].values())
    assert len((run / METRICS).read_text().splitlines()) == 2
    assert not (run / LOCK).exists()


def test_nan_through_the_cli_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _poison_update(monkeypatch, 1, "params")
    result = CliRunner(env={"PPOQA_DEBUG": ""}).invoke(
        app,
        [
            "train",
            "-q",
            "--iterations",
            "3",
            "--num-episodes",
            "8",
            "--run-dir",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("ppoqa: error: parameter ")
    assert "at iteration 1" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_absurd_learning_rate_never_crashes(tmp_path: Path) -> None:
    """lr at the top of its range: training either finishes or stops with our error."""
    with contextlib.suppress(TrainingError):
        train(tiny(iterations=4, learning_rate=10.0), tmp_path / "run", Callbacks())
    assert all(
        torch.isfinite(t).all() for t in load_checkpoint(tmp_path / "run")["policy"].values()
    )


# --- run directories: lock and write probe ---------------------------------------------------


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
time.sleep(120)
"""


@contextlib.contextmanager
def lock_held_by_another_process(lock: Path) -> Any:
    """A real second process holding the run's flock, as a live training does."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_live_lock_refuses_a_second_training(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with lock_held_by_another_process(run / LOCK) as holder:
        with pytest.raises(RunError, match=f"in use by another training \\(pid {holder.pid}\\)"):
            train(tiny(iterations=1), run, Callbacks())
        assert (run / LOCK).read_text() == f"{holder.pid}\n"  # not ours to remove
    assert not (run / CHECKPOINT).exists()


def test_stale_lock_is_taken_over_with_a_warning(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text(f"{dead.pid}\n")

    class Warned(Callbacks):
        messages: list[str] = []

        def on_warning(self, message: str) -> None:
            self.messages.append(message)

    train(tiny(iterations=1), run, Warned())
    assert any(f"stale lock left by pid {dead.pid}" in m for m in Warned.messages)
    assert (run / CHECKPOINT).exists()
    assert not (run / LOCK).exists()  # released after training


def test_a_lock_whose_pid_was_reused_does_not_block(tmp_path: Path) -> None:
    """The pid in a stale lock now belongs to another live process (pid reuse): the OS lock
    died with the training that wrote it, so a new training goes ahead."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        run = tmp_path / "run"
        run.mkdir()
        (run / LOCK).write_text(f"{other.pid}\n")
        train(tiny(iterations=1), run, Callbacks())
        assert (run / CHECKPOINT).exists()
        assert other.poll() is None  # still alive: its pid fooled nothing
    finally:
        other.kill()
        other.wait()


def test_lock_is_held_during_training_and_released_after(tmp_path: Path) -> None:
    run = tmp_path / "run"
    seen: list[str] = []

    class Peek(Callbacks):
        def on_iteration(self, record: dict[str, Any]) -> None:
            seen.append((run / LOCK).read_text().strip())

    train(tiny(iterations=2), run, Peek())
    assert seen == [str(os.getpid())] * 2
    assert not (run / LOCK).exists()


def test_write_probe_reports_unwritable_dir_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission denied (simulated: as root, chmod does not stop writes)."""

    def denied(*a: Any, **k: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    started: list[int] = []

    class Spy(Callbacks):
        def on_start(self, cfg: Config, run_dir: Path, total: int) -> None:
            started.append(total)

    monkeypatch.setattr(rundir.tempfile, "mkstemp", denied)
    with pytest.raises(RunError, match=r"not writable \(Permission denied\)"):
        train(tiny(iterations=1), tmp_path / "run", Spy())
    assert started == []


def test_write_probe_under_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="a parent of it is a file"):
        prepare_run_dir(tmp_path / "file" / "run")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores chmod")
def test_write_probe_read_only_dir(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(RunError, match="not writable"):
            prepare_run_dir(ro)
    finally:
        ro.chmod(0o700)


def test_a_finished_run_is_not_overwritten(trained: Path) -> None:
    before = (trained / CHECKPOINT).read_bytes()
    with pytest.raises(RunError, match="already holds a run"):
        train(tiny(iterations=1), trained, Callbacks())
    assert (trained / CHECKPOINT).read_bytes() == before


def test_find_run_skips_a_run_still_training(tmp_path: Path, trained: Path) -> None:
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(trained, runs / "a-done")
    shutil.copytree(trained, runs / "b-training")
    os.utime(runs / "b-training" / CHECKPOINT)
    with lock_held_by_another_process(runs / "b-training" / LOCK):
        assert rundir.find_run(None, runs) == runs / "a-done"
    assert rundir.find_run(None, runs) == runs / "b-training"  # the lock went with it
