"""Issue 15, "nothing lost, nothing hangs": the user's files, pipes, signals, locks, resumes.

Cases about processes run ppoqa as a real child process (`python -m ppo_cli`), with a timeout
so that a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ppo_cli.config import Config
from ppo_cli.core.rundir import CHECKPOINT, LOCK, MARKER, METRICS, load_checkpoint, read_metrics
from ppo_cli.core.trainer import Callbacks, train
from ppo_cli.errors import DatasetError, RunError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--num-episodes", "8", "--hidden-size", "8", "--no-early-stop"]
GOOD = (
    'pairs:\n  - question: "What is 2+2?"\n    answer: "4"\n  - question: "Hi?"\n    answer: hi\n'
)


def ppoqa(
    *args: str, cwd: Path, timeout: float = 120, stdout: Any = subprocess.PIPE, **kw: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ppo_cli", *args],
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        env={**os.environ, "PPOQA_DEBUG": "", "PYTHONPATH": str(ROOT)},
        **kw,
    )


def tiny(**kw: Any) -> Config:
    return Config(**{"num_episodes": 8, "hidden_size": 8, "target_accuracy": None, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    train(tiny(iterations=2), run, Callbacks())
    return run


# --- 1. never write over what ppoqa did not create -------------------------------------------


def test_run_dir_dot_in_a_users_folder_changes_nothing(tmp_path: Path) -> None:
    mine = "# my dataset, with comments\n" + GOOD + "extra_key: 1\n"
    (tmp_path / "dataset.yaml").write_text(mine)
    (tmp_path / "dataset.yaml").chmod(0o644)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    proc = ppoqa("train", "--iterations", "1", *TINY, "--dataset", "dataset.yaml",
                 "--run-dir", ".", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "is not empty and not a ppoqa run directory" in proc.stderr
    assert "choose a new or empty --run-dir" in proc.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert stat.S_IMODE((tmp_path / "dataset.yaml").stat().st_mode) == 0o644


def test_a_project_folder_is_refused_before_training(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("notes.txt", "vocab.json", "dataset.yaml"):
        (proj / name).write_text(f"my {name}\n")
    with pytest.raises(RunError, match=r"holds dataset.yaml, notes.txt, vocab.json"):
        train(tiny(iterations=1), proj, Callbacks())
    assert sorted(p.name for p in proj.iterdir()) == ["dataset.yaml", "notes.txt", "vocab.json"]
    assert all((proj / n).read_text() == f"my {n}\n" for n in ("notes.txt", "vocab.json"))


def test_new_empty_and_marked_folders_are_accepted(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    train(tiny(iterations=1), empty, Callbacks())
    assert (empty / MARKER).is_file() and (empty / CHECKPOINT).is_file()
    new = tmp_path / "a" / "b"
    train(tiny(iterations=1), new, Callbacks())
    assert (new / MARKER).is_file()
    # a marked folder whose training died before its first file: used again
    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / MARKER).write_text("ppoqa\n")
    train(tiny(iterations=1), marked, Callbacks())
    assert (marked / CHECKPOINT).is_file()


@pytest.mark.parametrize("value", ["", "   "])
@pytest.mark.parametrize("flag", ["--run-dir", "--dataset", "--config", "--resume"])
def test_an_empty_path_is_a_usage_error(tmp_path: Path, flag: str, value: str) -> None:
    proc = ppoqa("train", flag, value, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"ppoqa: error: {flag} is empty (hint: give {flag} a value (is the shell variable you "
        "meant unset?))"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_keep_the_users_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        train(tiny(iterations=1), tmp_path / "run", Callbacks())
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").iterdir() if p.is_file()]
    assert {p.name for p in files} >= {CHECKPOINT, "config.yaml", "dataset.yaml", "vocab.json"}
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == dict.fromkeys(
        (p.name for p in files), mode
    )


def test_plot_figure_keeps_the_umask(trained: Path, tmp_path: Path) -> None:
    from ppo_cli.plotting import plot_run

    old = os.umask(0o022)
    try:
        out = plot_run(trained, tmp_path / "fig.png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


# --- 2. only regular files are read; reads never block ---------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--dataset", "p.fifo"], "p.fifo: is a named pipe (FIFO), not a dataset file"),
        (["train", "--config", "p.fifo"], "p.fifo: is a named pipe (FIFO), not a config file"),
        (["sft", "--dataset", "p.fifo"], "p.fifo: is a named pipe (FIFO), not a dataset file"),
    ],
)
def test_a_fifo_is_named_not_waited_on(tmp_path: Path, args: list[str], message: str) -> None:
    os.mkfifo(tmp_path / "p.fifo")
    proc = ppoqa(*args, cwd=tmp_path, timeout=60)  # a hang fails here
    assert proc.returncode == 1
    assert message in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_eval_dataset_fifo_and_run_files_that_are_fifos(trained: Path, tmp_path: Path) -> None:
    import shutil

    os.mkfifo(tmp_path / "p.fifo")
    proc = ppoqa("eval", "--run", str(trained), "--dataset", "p.fifo", cwd=tmp_path, timeout=60)
    assert proc.returncode == 1 and "is a named pipe (FIFO)" in proc.stderr
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "dataset.yaml").unlink()
    os.mkfifo(run / "dataset.yaml")
    proc = ppoqa("ask", "Hi?", "--run", "run", cwd=tmp_path, timeout=60)
    assert proc.returncode == 1
    assert "dataset.yaml: is a named pipe (FIFO), not a dataset file" in proc.stderr


def test_a_device_and_a_socket_are_named(tmp_path: Path) -> None:
    import socket

    from ppo_cli.textqa.data import load_dataset

    with pytest.raises(DatasetError, match="is a character device"):
        load_dataset("/dev/zero")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s"))
        with pytest.raises(DatasetError, match="is a socket"):
            load_dataset(tmp_path / "s")
    finally:
        sock.close()


# --- 4. one broken-pipe rule ------------------------------------------------------------------


def _closed_pipe() -> int:
    read_end, write_end = os.pipe()
    os.close(read_end)
    return write_end


@pytest.mark.parametrize(
    "args",
    [
        ["eval", "--run", "{run}"],
        ["explain-gae", "--run", "{run}"],
        ["explain-clip"],
        ["explain-reward"],
        ["doctor", "--run", "{run}"],
        ["--help"],
        ["train", "--help"],
    ],
    ids=lambda a: " ".join(a),
)
def test_reader_gone_exits_0_quietly(trained: Path, tmp_path: Path, args: list[str]) -> None:
    fd = _closed_pipe()
    try:
        argv = [a.replace("{run}", str(trained)) for a in args]
        proc = ppoqa(*argv, cwd=tmp_path, stdout=fd)
    finally:
        os.close(fd)
    assert proc.stderr == ""
    assert proc.returncode == 0


def test_train_piped_to_a_reader_that_left_keeps_its_files(tmp_path: Path) -> None:
    fd = _closed_pipe()
    try:
        proc = ppoqa("train", "-q", "--iterations", "2", *TINY, "--run-dir", "run",
                     cwd=tmp_path, stdout=fd)  # fmt: skip
    finally:
        os.close(fd)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert load_checkpoint(tmp_path / "run")["iteration"] == 2
    assert not (tmp_path / "run" / LOCK).exists()


def test_train_whose_progress_reader_left_saves_and_exits_0(tmp_path: Path) -> None:
    """`ppoqa train 2>&1 | head -1`: the progress bar's reader goes away mid-run; the run stops
    at an iteration boundary with that iteration saved, and can be resumed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ppo_cli", "train", "--iterations", "400", *TINY,
         "--run-dir", "run"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PPOQA_DEBUG": "", "PYTHONPATH": str(ROOT), "COLUMNS": "80"},
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()  # the reader leaves
    assert proc.wait(timeout=300) == 0
    ckpt = load_checkpoint(tmp_path / "run")
    assert 1 <= ckpt["iteration"] < 400
    assert len(read_metrics(tmp_path / "run")) == ckpt["iteration"]
    assert not (tmp_path / "run" / LOCK).exists()


# --- 5. resume refuses anything that changes what the run learns -----------------------------


def _edit_dataset(run: Path, **changes: Any) -> None:
    doc = yaml.safe_load((run / "dataset.yaml").read_text())
    doc.update(changes)
    (run / "dataset.yaml").write_text(yaml.safe_dump(doc))


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"rewards": {"correct": 30.0}}, "rewards.correct (10.0 -> 30.0)"),
        ({"reward": "exact"}, "reward (lcs -> exact)"),
        ({"max_answer_tokens": 5}, "max_answer_tokens (4 -> 5)"),
    ],
)
def test_resume_refuses_edited_dataset_settings(
    tmp_path: Path, changes: dict[str, Any], named: str
) -> None:
    run = tmp_path / "run"
    train(tiny(iterations=1), run, Callbacks())
    _edit_dataset(run, **changes)
    with pytest.raises(RunError, match="what the run learns from changed") as info:
        train(tiny(iterations=2), run, Callbacks(), resume=True)
    assert named in info.value.message
    assert load_checkpoint(run)["iteration"] == 1


def test_resume_refuses_edited_levels(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny(iterations=1), run, Callbacks())
    doc = yaml.safe_load((run / "dataset.yaml").read_text())
    doc["pairs"][0]["level"] = 3
    (run / "dataset.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(RunError, match=r"levels \("):
        train(tiny(iterations=2), run, Callbacks(), resume=True)


def test_resume_refuses_an_edited_config_answer_vocab(tmp_path: Path) -> None:
    from ppo_cli.core.session import resume_config

    run = tmp_path / "run"
    train(tiny(iterations=1), run, Callbacks())
    text = (run / "config.yaml").read_text()
    assert "answer_vocab: true" in text
    (run / "config.yaml").write_text(text.replace("answer_vocab: true", "answer_vocab: false"))
    with pytest.raises(RunError, match="answer_vocab"):
        train(resume_config(run, {"iterations": 2}), run, Callbacks(), resume=True)


# --- 6. SIGTERM and SIGHUP: like the first Ctrl-C ---------------------------------------------


def _start_training(cwd: Path, run: str, iterations: int, *more: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ppo_cli", "train", "-q", "--iterations", str(iterations),
         *TINY, "--run-dir", run, "--save-every", "0", *more],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PPOQA_DEBUG": "", "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def _wait_for_iterations(run: Path, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        metrics = run / METRICS
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {n} iterations within the deadline")


def _comparable(run: Path) -> list[dict[str, Any]]:
    drop = {"wall_seconds"}
    return [{k: v for k, v in r.items() if k not in drop} for r in read_metrics(run)]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_saves_then_resume_gives_the_same_metrics(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    total = 40
    ref = _start_training(tmp_path, "ref", total)  # the same run, uninterrupted
    assert ref.wait(timeout=300) == 0, ref.communicate()
    ref_iterations = load_checkpoint(tmp_path / "ref")["iteration"]

    proc = _start_training(tmp_path, "run", total)
    run = tmp_path / "run"
    _wait_for_iterations(run, 3, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    name = sig.name
    assert f"ppoqa: warning: {name}: saving and stopping after this iteration" in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"ppoqa: interrupted: {name}: training interrupted after iteration ")
    assert "resume with 'ppoqa train --resume run'" in last.replace("`", "'")
    assert not (run / LOCK).exists()
    stopped = load_checkpoint(run)["iteration"]
    assert 3 <= stopped < ref_iterations
    assert len(read_metrics(run)) == stopped  # nothing lost: every finished iteration saved

    resumed = ppoqa("train", "-q", "--resume", "run", "--json", cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["iterations"] == ref_iterations
    assert _comparable(run) == _comparable(tmp_path / "ref")


# --- 7. a lock that pid reuse cannot fool -----------------------------------------------------


def test_lock_dies_with_a_killed_training(tmp_path: Path) -> None:
    proc = _start_training(tmp_path, "run", 100_000, "--stall-iterations", "0")
    run = tmp_path / "run"
    _wait_for_iterations(run, 1, proc)
    second = ppoqa("train", "--resume", "run", cwd=tmp_path)
    assert proc.poll() is None  # the first training was alive throughout
    assert second.returncode == 1
    assert f"in use by another training (pid {proc.pid})" in second.stderr
    proc.kill()
    proc.wait()
    assert (run / LOCK).exists()  # SIGKILL leaves the file, but not the OS lock
    # the next training takes the lock over (the checkpoint of the start: iteration 0)
    resumed = ppoqa("train", "-q", "--resume", "run", "--iterations", "2", cwd=tmp_path,
                    timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"taking over a stale lock left by pid {proc.pid}" in resumed.stderr
    assert load_checkpoint(run)["iteration"] == 2


def test_a_lock_that_is_a_directory_is_named(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).mkdir()
    with pytest.raises(RunError, match=r"\.lock: is a directory, not ppoqa's lock file"):
        train(tiny(iterations=1), run, Callbacks())
    assert not (run / CHECKPOINT).exists()


# --- 8. validators agree with the code ----------------------------------------------------------


def test_trace_iterations_beyond_the_run_warn(tmp_path: Path) -> None:
    proc = ppoqa("train", "-q", "--iterations", "2", *TINY, "--trace-iterations", "99",
                 "--run-dir", "run", cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (
        "ppoqa: warning: --trace-iterations 99: the run has only 2 iterations; nothing is "
        "traced there" in proc.stderr
    )


def test_gym_one_step_batch_is_refused_before_any_folder(tmp_path: Path) -> None:
    proc = ppoqa("train", "--env", "CartPole-v1", "--num-envs", "1", "--num-steps", "1",
                 "--run-dir", "run", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert "--num-steps must be at least 2" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_gym_two_step_batch_of_one_env_trains(tmp_path: Path) -> None:
    from ppo_cli.config import resolve

    cfg = resolve({"env": "CartPole-v1", "num_envs": 1, "num_steps": 2, "timesteps": 40,
                   "num_minibatches": 2})  # fmt: skip
    result = train(cfg, tmp_path / "run", Callbacks())
    assert result.iterations == 20


# --- 3. large datasets -------------------------------------------------------------------------


def _big_yaml(pairs: int) -> str:
    rows = "".join(
        f'  - question: "What is item {i}?"\n    answer: "w{i % 50}"\n' for i in range(pairs)
    )
    return "name: big\npairs:\n" + "".join(rows)


def test_streamed_and_composed_yaml_agree(tmp_path: Path) -> None:
    """The fast event-stream reader gives what PyYAML's composer gives, numbers kept as typed
    and entries' lines in the errors; YAML features it leaves to PyYAML still work."""
    from ppo_cli.textqa.data import _compose_yaml, _stream_yaml, parse_dataset

    text = (
        "name: n\nmax_answer_tokens: 3\nrewards: {correct: 5, wrong: -1.5}\npairs:\n"
        "  - {question: 'Code?', answer: 010}\n  - question: Time?\n    answer: 1:30\n"
        "  - question: Yes?\n    answer: 'yes'\n    level: 2\n  - {question: 'Pi?', answer: 3.10}\n"
    )
    streamed, composed = _stream_yaml(text, None), _compose_yaml(text)
    assert streamed[:2] == composed[:2]  # the data, and each entry's line
    ds = parse_dataset(text, "d.yaml")
    assert [p.answer for p in ds.pairs] == ["010", "1:30", "yes", "3.10"]
    assert ds.pairs[2].level == 2 and ds.rewards == {"correct": 5.0, "wrong": -1.5}
    with pytest.raises(DatasetError, match=r"d.yaml: pair 1 \(line 3\): 'answer' is the boolean"):
        parse_dataset("pairs:\n  - {question: a, answer: b}\n  - {question: c, answer: no}\n",
                      "d.yaml")  # fmt: skip
    anchored = "x: &q What?\npairs:\n  - {question: *q, answer: a}\n"
    assert parse_dataset(anchored).pairs[0].question == "What?"  # via the composer


def test_a_big_dataset_reports_progress(tmp_path: Path) -> None:
    from ppo_cli.textqa.data import PROGRESS_MIN_CHARS, load_dataset

    path = tmp_path / "big.yaml"
    path.write_text(_big_yaml(45_000))
    assert path.stat().st_size > PROGRESS_MIN_CHARS
    lines: list[str] = []
    ds = load_dataset(path, lines.append)
    assert len(ds.pairs) == 45_000
    assert lines[0].startswith(f"reading {path} (") and lines[-1].endswith(": 100%")
    assert 3 <= len(lines) <= 7
    small: list[str] = []
    load_dataset(ROOT / "examples" / "capitals.yaml", small.append)
    assert small == []


def test_a_file_over_the_limit_is_refused_from_its_size(tmp_path: Path) -> None:
    from ppo_cli.textqa.data import load_dataset

    path = tmp_path / "huge.yaml"
    with path.open("wb") as fh:
        fh.truncate(30_000_000)  # sparse: refused before a byte is read
    with pytest.raises(DatasetError, match=r"the file is 30.0 MB, more than the 20.0 MB"):
        load_dataset(path)


def test_an_iteration_too_large_for_memory_is_refused_before_any_folder(tmp_path: Path) -> None:
    pairs = "".join(f"  - {{question: q{i} x{i}?, answer: a{i}}}\n" for i in range(200))
    (tmp_path / "d.yaml").write_text("pairs:\n" + pairs)
    cfg = tiny(iterations=1, num_episodes=1_000_000, dataset=str(tmp_path / "d.yaml"))
    with pytest.raises(DatasetError, match="1,000,000 episodes needs about 7.3 GB") as info:
        train(cfg, tmp_path / "run", Callbacks())
    assert info.value.hint.startswith("pass --num-episodes 550964 or fewer")
    assert not (tmp_path / "run").exists()


def test_greedy_evaluation_in_chunks_answers_as_one_batch(
    trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ppo_cli.textqa import evaluate

    run = evaluate.load_text_run(trained)
    whole = evaluate.evaluate_qa(run.policy, run.task)
    monkeypatch.setattr(evaluate, "eval_chunk", lambda vocab_size: 2)
    assert evaluate.evaluate_qa(run.policy, run.task) == whole
