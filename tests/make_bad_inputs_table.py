# ruff: noqa: E501
"""Bad inputs a user can give `ppoqa`, what each one gives, and the docs table made from them.

tests/test_reliability.py runs every case through CliRunner (with and without --json) and
checks the one-line error shape; it also fails when docs/bad-inputs.md is not what this
script renders. Regenerate the page with:

    python tests/make_bad_inputs_table.py
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from ppo_cli.cli import app  # noqa: E402
from ppo_cli.config import Config  # noqa: E402
from ppo_cli.core.rundir import CHECKPOINT, FORMAT_VERSION  # noqa: E402
from ppo_cli.core.trainer import Callbacks, train  # noqa: E402

DOC = ROOT / "docs" / "bad-inputs.md"
MARKER = "PWNED"  # what the pickled-code checkpoint would create if it ever ran


@dataclass
class Case:
    what: str  # the bad input, in words
    argv: list[str]
    exit_code: int
    expect: str  # a piece of the stderr line that names the problem
    setup: Callable[[Path], None] = lambda cwd: None
    stdin: bytes | None = None


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


# --- setups (each runs in a fresh, empty working directory) ----------------------------------

GOOD_DATASET = 'pairs:\n  - question: "What is 2+2?"\n    answer: "4"\n  - question: "Hi?"\n    answer: hello\n'
_TRAINED: Path | None = None


def _trained_template() -> Path:
    """One tiny finished text-QA run, trained once per process and copied per case."""
    global _TRAINED
    if _TRAINED is None:
        root = Path(tempfile.mkdtemp(prefix="ppoqa-bad-inputs-"))
        cfg = Config(iterations=1, num_episodes=8, hidden_size=8, save_every=0)
        train(cfg, root / "run", Callbacks())
        _TRAINED = root / "run"
    return _TRAINED


def trained_run(cwd: Path) -> Path:
    dest = cwd / "run"
    shutil.copytree(_trained_template(), dest)
    return dest


def write(name: str, data: str | bytes) -> Callable[[Path], None]:
    def setup(cwd: Path) -> None:
        path = cwd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)

    return setup


def mkdir(name: str) -> Callable[[Path], None]:
    return lambda cwd: (cwd / name).mkdir(parents=True)


class PickledCode:
    """Unpickling this would run a shell command: a checkpoint must never do that."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {MARKER}",))


def wrap_payload(body: bytes, version: int = FORMAT_VERSION) -> bytes:
    """A checkpoint file in ppoqa's own format around any payload bytes (valid checksum)."""
    buf = io.BytesIO()
    torch.save(
        {
            "format_version": version,
            "sha256": hashlib.sha256(body).hexdigest(),
            "payload": torch.frombuffer(bytearray(body), dtype=torch.uint8),
        },
        buf,
    )
    return buf.getvalue()


def with_checkpoint(make: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """A trained run whose checkpoint.pt is replaced by make(original bytes)."""

    def setup(cwd: Path) -> None:
        run = trained_run(cwd)
        ckpt = run / CHECKPOINT
        ckpt.write_bytes(make(ckpt.read_bytes()))

    return setup


def pickled_code_raw(_: bytes) -> bytes:
    buf = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, "policy": PickledCode()}, buf)
    return buf.getvalue()


def pickled_code_wrapped(_: bytes) -> bytes:
    inner = io.BytesIO()
    torch.save({"policy": PickledCode(), "vocab": ["<PAD>"]}, inner)
    return wrap_payload(inner.getvalue())


def newer_format(_: bytes) -> bytes:
    inner = io.BytesIO()
    torch.save({"policy": {}}, inner)
    return wrap_payload(inner.getvalue(), version=FORMAT_VERSION + 1)


def flip_middle_byte(raw: bytes) -> bytes:
    b = bytearray(raw)
    b[len(b) // 2] ^= 0xFF
    return bytes(b)


def run_with(name: str, text: str, mode: str = "w") -> Callable[[Path], None]:
    """A trained run with one of its files replaced (mode 'w') or appended to ('a')."""

    def setup(cwd: Path) -> None:
        run = trained_run(cwd)
        with open(run / name, mode, encoding="utf-8") as fh:
            fh.write(text)

    return setup


def gym_run(cwd: Path) -> None:
    (cwd / "run").mkdir()
    (cwd / "run" / "config.yaml").write_text("env: CartPole-v1\n", encoding="utf-8")


def gym_trained_run(cwd: Path) -> None:
    from ppo_cli.config import resolve

    train(resolve({"env": "CartPole-v1", "timesteps": 512}), cwd / "run", Callbacks())


TEXT_ENV = """import gymnasium as gym
class TextEnv(gym.Env):
    observation_space = gym.spaces.Text(4)
    action_space = gym.spaces.Discrete(2)
gym.register(id="Text-v0", entry_point=TextEnv)
"""


_HELD_LOCKS: list[int] = []  # open descriptors whose flock stands for a live training


def locked_run_dir(cwd: Path) -> None:
    """A run directory whose lock is held, as by a live training: flock() on a descriptor of
    our own (a second open of the same file conflicts with it, even in this process)."""
    import fcntl

    (cwd / "run").mkdir()
    fd = os.open(cwd / "run" / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD_LOCKS.append(fd)


def fifo(name: str) -> Callable[[Path], None]:
    """A named pipe no one writes to: reading it would wait forever."""
    return lambda cwd: os.mkfifo(cwd / name)


def sparse(name: str, size: int) -> Callable[[Path], None]:
    """A file of `size` bytes that takes no disk (refused from its size, never read)."""

    def make(cwd: Path) -> None:
        with (cwd / name).open("wb") as fh:
            fh.truncate(size)

    return make


def users_folder(cwd: Path) -> None:
    """A folder of the user's own files, with names ppoqa also uses."""
    (cwd / "dataset.yaml").write_text(
        "# my notes\n" + GOOD_DATASET + "extra: 1\n", encoding="utf-8"
    )
    (cwd / "proj").mkdir()
    for name in ("notes.txt", "vocab.json", "dataset.yaml"):
        (cwd / "proj" / name).write_text("mine\n", encoding="utf-8")


def run_with_edited_rewards(cwd: Path) -> None:
    import yaml

    run = trained_run(cwd)
    doc = yaml.safe_load((run / "dataset.yaml").read_text(encoding="utf-8"))
    doc["rewards"] = {"correct": 30.0}
    (run / "dataset.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")


def lock_dir(cwd: Path) -> None:
    (trained_run(cwd) / ".lock").mkdir()


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(cwd: Path) -> None:
        for s in setups:
            s(cwd)

    return setup


# --- the cases -------------------------------------------------------------------------------

T = ["train", "--iterations", "1", "--num-episodes", "8"]

CASES: list[Case] = [
    # datasets
    Case("dataset file missing", [*T, "--dataset", "nope.yaml"], 1, "nope.yaml: dataset file not found"),
    Case("dataset path is a directory", [*T, "--dataset", "data"], 1, "is a directory", mkdir("data")),
    Case("dataset not UTF-8", [*T, "--dataset", "d.yaml"], 1, "not UTF-8", write("d.yaml", b"pairs: \xff\xfe")),
    Case("dataset empty file", [*T, "--dataset", "d.yaml"], 1, "d.yaml: file is empty", write("d.yaml", "")),
    Case("dataset invalid YAML", [*T, "--dataset", "d.yaml"], 1, "line 3: not valid YAML (mapping values are not allowed here)", write("d.yaml", "pairs:\n  - question: a\n    answer: b: c\n")),
    Case("dataset is a list, not a mapping", [*T, "--dataset", "d.yaml"], 1, "top level is not a mapping", write("d.yaml", "- question: x\n")),
    Case("dataset entry without an answer", [*T, "--dataset", "d.yaml"], 1, "pair 0 (line 2): missing 'answer'", write("d.yaml", "pairs:\n  - question: Why?\n")),
    Case("dataset answer `yes` read as a boolean", [*T, "--dataset", "d.yaml"], 1, "'answer' is the boolean True", write("d.yaml", "pairs:\n  - question: Is it\n    answer: yes\n")),
    Case("dataset answer longer than the limit", [*T, "--dataset", "d.yaml"], 1, "more than the limit of 4", write("d.yaml", "pairs:\n  - question: Q\n    answer: a b c d e\n")),
    Case("dataset question with two answers", [*T, "--dataset", "d.yaml"], 1, "has two answers", write("d.yaml", "pairs:\n  - {question: Q, answer: a}\n  - {question: Q, answer: b}\n")),
    Case("dataset unknown reward key", [*T, "--dataset", "d.yaml"], 1, "'rewards' must be a mapping", write("d.yaml", GOOD_DATASET + "rewards: {bonus: 1}\n")),
    Case("dataset unknown reward name", [*T, "--dataset", "d.yaml"], 1, "d.yaml: 'reward': unknown reward 'pefix'", write("d.yaml", "reward: pefix\n" + GOOD_DATASET)),
    Case("dataset reward that pays a wrong answer like the right one", [*T, "--dataset", "d.yaml"], 1, "pays up to 2 for a wrong answer", write("d.yaml", "rewards: {correct: 1}\n" + GOOD_DATASET)),
    Case("dataset `overlap` with a reward other than walkthrough", [*T, "--dataset", "d.yaml"], 1, "'overlap' does not apply to reward 'lcs'", write("d.yaml", "rewards: {overlap: 2}\n" + GOOD_DATASET)),
    Case("unknown --reward", [*T, "--reward", "hedge"], 2, "--reward: unknown reward 'hedge'"),
    Case("dataset YAML alias bomb", [*T, "--dataset", "d.yaml"], 1, "'name' must be text", write("d.yaml", GOOD_DATASET + "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nname: *b\n")),
    Case("dataset is a named pipe (FIFO)", [*T, "--dataset", "d.fifo"], 1, "d.fifo: is a named pipe (FIFO), not a dataset file", fifo("d.fifo")),
    Case("dataset is a character device", [*T, "--dataset", "/dev/zero"], 1, "/dev/zero: is a character device, not a dataset file"),
    Case("dataset answer of only a zero-width space", [*T, "--dataset", "d.yaml"], 1, "'answer' holds only invisible characters (U+200B)", write("d.yaml", 'pairs:\n  - question: Hi?\n    answer: "\\u200b"\n')),
    Case("--dataset with a gymnasium env", ["train", "--env", "CartPole-v1", "--dataset", "d.yaml"], 2, "--dataset is for text QA, not CartPole-v1 runs", write("d.yaml", GOOD_DATASET)),
    Case("--curriculum with a gymnasium env", ["train", "--env", "CartPole-v1", "--curriculum"], 2, "--curriculum is for text QA, not CartPole-v1 runs"),
    Case("--answer-vocab with a gymnasium env", ["train", "--env", "CartPole-v1", "--answer-vocab"], 2, "--answer-vocab is for text QA, not CartPole-v1 runs"),
    Case("dataset file over the 20 MB limit", [*T, "--dataset", "d.yaml"], 1, "d.yaml: the file is 25.0 MB, more than the 20.0 MB a dataset may hold", sparse("d.yaml", 25_000_000)),
    Case("an iteration too large for memory (episodes x vocabulary)", [*T, "--num-episodes", "1000000", "--dataset", "d.yaml"], 1, "an iteration of 1,000,000 episodes needs about", write("d.yaml", "pairs:\n" + "".join(f"  - {{question: q{i} x{i}?, answer: a{i}}}\n" for i in range(200)))),
    Case("dataset too long for the transformer", [*T, "--policy", "transformer", "--dataset", "d.yaml"], 1, "longer than the transformer reads", write("d.yaml", "pairs:\n  - {question: " + "w " * 300 + ", answer: a}\n")),
    # config files and flags
    Case("config is a named pipe (FIFO)", [*T, "--config", "c.fifo"], 1, "c.fifo: is a named pipe (FIFO), not a config file", fifo("c.fifo")),
    Case("config file missing", [*T, "--config", "c.yaml"], 1, "c.yaml: config file not found"),
    Case("config path is a directory", [*T, "--config", "c"], 1, "is a directory", mkdir("c")),
    Case("config not a mapping", [*T, "--config", "c.yaml"], 1, "top level is not a mapping", write("c.yaml", "- 1\n")),
    Case("config unknown key (typo)", [*T, "--config", "c.yaml"], 1, "unknown setting 'lerning_rate'", write("c.yaml", "lerning_rate: 0.001\n")),
    Case("config wrong type", [*T, "--config", "c.yaml"], 1, "'learning_rate' must be a number", write("c.yaml", "learning_rate: fast\n")),
    Case("config value out of range", [*T, "--config", "c.yaml"], 1, "'gamma' must be >= 0.0 and <= 1.0", write("c.yaml", "gamma: 2\n")),
    Case("config NaN", [*T, "--config", "c.yaml"], 1, "got nan", write("c.yaml", "learning_rate: .nan\n")),
    Case("config not UTF-8", [*T, "--config", "c.yaml"], 1, "not UTF-8", write("c.yaml", b"seed: \xff\n")),
    Case("flag out of range", [*T, "--gamma", "1.5"], 2, "--gamma must be >= 0.0 and <= 1.0"),
    Case("negative --show-every", [*T, "--show-every", "-1"], 2, "Invalid value for '--show-every'"),
    Case("gymnasium batch of one step per env", ["train", "--env", "CartPole-v1", "--num-envs", "1", "--num-steps", "1"], 2, "--num-steps must be at least 2 for gymnasium runs"),
    Case("gymnasium batch smaller than --num-minibatches", ["train", "--env", "CartPole-v1", "--num-envs", "1", "--num-steps", "2", "--num-minibatches", "4"], 2, "= 2 steps cannot be split into num_minibatches = 4"),
    Case("negative seed", [*T, "--seed", "-1"], 2, "--seed must be >= 0"),
    Case("flag is not a number", ["train", "--iterations", "many"], 2, "Invalid value for '--iterations'"),
    Case("unknown flag", ["train", "--lerning-rate", "0.1"], 2, "No such option"),
    Case("unknown command", ["trian"], 2, "No such command"),
    # run directories
    Case("--run-dir under a regular file", [*T, "--run-dir", "f.txt/run"], 1, "a parent of it is a file", write("f.txt", "x")),
    Case("--run-dir is a file", [*T, "--run-dir", "f.txt"], 1, "exists and is not a directory", write("f.txt", "x")),
    Case("--run-dir already holds a run", [*T, "--run-dir", "run"], 1, "run: already holds a run", trained_run),
    Case("--run-dir in use by a live training", [*T, "--run-dir", "run"], 1, "in use by another training", locked_run_dir),
    Case("--run-dir . in a folder of the user's own files", [*T, "--dataset", "dataset.yaml", "--run-dir", "."], 1, ".: is not empty and not a ppoqa run directory", users_folder),
    Case("--run-dir holding notes.txt, vocab.json, dataset.yaml", [*T, "--run-dir", "proj"], 1, "proj: is not empty and not a ppoqa run directory (it holds dataset.yaml, notes.txt, vocab.json)", users_folder),
    Case("--run-dir empty (an unset shell variable)", [*T, "--run-dir", ""], 2, "--run-dir is empty"),
    Case("--run-dir blank", [*T, "--run-dir", "  "], 2, "--run-dir is empty"),
    Case("sft --run-dir holding the user's files", ["sft", "--epochs", "1", "--run-dir", "proj"], 1, "proj: is not empty and not a ppoqa run directory", users_folder),
    Case("sweep --out holding the user's files", ["sweep", "--search", "clip_coef=0.1", "--out", "proj"], 1, "proj: is not empty and not a ppoqa sweep folder", users_folder),
    Case("run's .lock is a directory", ["train", "--resume", "run", "--iterations", "2"], 1, "run/.lock: is a directory, not ppoqa's lock file", lock_dir),
    # resume
    Case("--resume a folder that is no run", ["train", "--resume", "empty"], 1, "not a ppoqa run directory", mkdir("empty")),
    Case("--resume a missing folder", ["train", "--resume", "nope"], 1, "run directory not found"),
    Case("--resume a finished run", ["train", "--resume", "run"], 1, "already finished all 1 iterations", trained_run),
    Case("--resume with a changed learning rate", ["train", "--resume", "run", "--lr", "0.1"], 2, "--learning-rate cannot change when resuming", trained_run),
    Case("--resume with --config", ["train", "--resume", "run", "--config", "c.yaml"], 2, "--config cannot be combined with --resume", both(trained_run, write("c.yaml", "seed: 1\n"))),
    Case("--resume a run whose dataset.yaml rewards were edited", ["train", "--resume", "run", "--iterations", "2"], 1, "what the run learns from changed since its checkpoint: rewards.correct (10.0 -> 30.0)", run_with_edited_rewards),
    Case("--resume a run whose dataset.yaml was swapped", ["train", "--resume", "run", "--iterations", "2"], 1, "trained on another dataset", run_with("dataset.yaml", GOOD_DATASET)),
    # eval / ask on bad runs and checkpoints
    Case("doctor with --run missing", ["doctor", "--run", "nope"], 1, "nope: run directory not found"),
    Case("doctor on a half-written run (config only)", ["doctor", "--run", "run"], 1, "no metrics.jsonl", write("run/config.yaml", "env: text-qa\n")),
    Case("eval with --run missing", ["eval", "--run", "nope"], 1, "nope: run directory not found"),
    Case("eval with --run at a file", ["eval", "--run", "f.txt"], 1, "is a file, not a run directory", write("f.txt", "x")),
    Case("eval with --run at a folder that is no run", ["eval", "--run", "empty"], 1, "not a ppoqa run directory", mkdir("empty")),
    Case("eval with no run at all", ["eval"], 1, "no trained run found under runs/"),
    Case("checkpoint carrying pickled code", ["eval", "--run", "run"], 1, "refused, the checkpoint contains pickled code", with_checkpoint(pickled_code_raw)),
    Case("pickled code inside a well-formed checkpoint", ["ask", "Hi?", "--run", "run"], 1, "refused, the checkpoint contains pickled code", with_checkpoint(pickled_code_wrapped)),
    Case("checkpoint from a newer ppoqa", ["eval", "--run", "run"], 1, f"checkpoint format {FORMAT_VERSION + 1} is newer", with_checkpoint(newer_format)),
    Case("checkpoint truncated", ["eval", "--run", "run"], 1, "truncated or corrupted", with_checkpoint(lambda raw: raw[: len(raw) // 2])),
    Case("checkpoint with a flipped byte", ["eval", "--run", "run"], 1, "corrupted (checksum mismatch)", with_checkpoint(flip_middle_byte)),
    Case("checkpoint of random bytes", ["eval", "--run", "run"], 1, "not a ppoqa checkpoint (not a torch zip file)", with_checkpoint(lambda raw: bytes(range(256)) * 4)),
    Case("checkpoint empty", ["ask", "Hi?", "--run", "run"], 1, "checkpoint is empty", with_checkpoint(lambda raw: b"")),
    Case("checkpoint for another dataset", ["eval", "--run", "run"], 1, "trained on another dataset", run_with("dataset.yaml", GOOD_DATASET)),
    Case("run config with an unknown key", ["eval", "--run", "run"], 1, "unknown setting 'future_setting'", run_with("config.yaml", "future_setting: 1\n", "a")),
    Case("run config not UTF-8", ["ask", "Hi?", "--run", "run"], 1, "unreadable (not UTF-8 YAML)", both(trained_run, write("run/config.yaml", b"\xff\xfe"))),
    Case("run without its dataset.yaml", ["ask", "Hi?", "--run", "run"], 1, "dataset.yaml: missing", lambda cwd: (trained_run(cwd) / "dataset.yaml").unlink()),
    Case("eval --dataset a named pipe (FIFO)", ["eval", "--run", "run", "--dataset", "d.fifo"], 1, "d.fifo: is a named pipe (FIFO), not a dataset file", both(trained_run, fifo("d.fifo"))),
    Case("checkpoint.pt is a named pipe (FIFO)", ["eval", "--run", "run"], 1, "checkpoint.pt: is a named pipe (FIFO), not a checkpoint", both(lambda cwd: (trained_run(cwd) / "checkpoint.pt").unlink(), fifo("run/checkpoint.pt"))),
    Case("ask an empty question", ["ask", "", "--run", "run"], 2, "the question is empty", trained_run),
    Case("ask a question of only a zero-width space", ["ask", "\u200b", "--run", "run"], 2, "the question is empty (only invisible characters)", trained_run),
    Case("plot a run whose metrics.jsonl has a [1,2,3] line", ["plot", "--run", "run"], 1, "metrics.jsonl: line 2 is a JSON list, not an object", run_with("metrics.jsonl", "[1, 2, 3]\n", "a")),
    Case("plot a run whose metrics have \"iteration\": \"x\"", ["plot", "--run", "run"], 1, "metrics.jsonl: line 2 'iteration' must be a whole number >= 0, got \"x\"", run_with("metrics.jsonl", '{"iteration": "x"}\n', "a")),
    Case("plot --out over a file ppoqa did not draw", ["plot", "--clip", "--out", "mine.png"], 1, "mine.png: already exists and ppoqa did not draw it", write("mine.png", "mine")),
    Case("eval --seed below 0", ["eval", "--seed", "-5"], 2, "Invalid value for '--seed'"),
    Case("eval --dataset not UTF-8", ["eval", "--run", "run", "--dataset", "d.yaml"], 1, "not UTF-8", both(trained_run, write("d.yaml", b"\xff"))),
    Case("eval --episodes 0", ["eval", "--episodes", "0"], 2, "Invalid value for '--episodes'"),
    Case("ask with a gymnasium run", ["ask", "Hi?", "--run", "run"], 1, "is a run of CartPole-v1, not a text-QA run", gym_run),
    Case("ask with stdin not UTF-8", ["ask", "--run", "run"], 1, "stdin: not UTF-8 text", trained_run, b"Hi?\n\xff\n"),
    # gymnasium (issue 12): user env modules, --env-kwargs, spaces, --record
    Case("--env-kwargs without KEY=", ["train", "--env", "CartPole-v1", "--env-kwargs", "length"], 2, "expected KEY=VALUE"),
    Case("--env-kwargs value that is not one YAML scalar", ["train", "--env", "CartPole-v1", "--env-kwargs", "length=[1, 2]"], 2, "is not a single YAML value"),
    Case("--env-kwargs value the env rejects", ["train", "--env", "FrozenLake-v1", "--env-kwargs", "map_name=9x9", "--timesteps", "64"], 1, "the env rejected a value: check --env-kwargs map_name"),
    Case("--env-kwargs the env's constructor rejects", ["train", "--env", "CartPole-v1", "--env-kwargs", "length=3", "--timesteps", "64"], 1, "its constructor rejected --env-kwargs length"),
    Case("--env module that fails to import", ["train", "--env", "brokenenv:My-v0"], 1, "importing brokenenv failed (RuntimeError: no config)", write("brokenenv.py", "raise RuntimeError('no config')\n")),
    Case("--env module that registers nothing", ["train", "--env", "quietenv:My-v0"], 1, "did not register 'My-v0'", write("quietenv.py", "X = 1\n")),
    Case("--env with an unsupported space", ["train", "--env", "textenv:Text-v0"], 1, "has a Text observation space; ppoqa supports", write("textenv.py", TEXT_ENV)),
    Case("eval --record with an unknown format", ["eval", "--run", "run", "--record", "a.webm"], 2, "unknown format '.webm'", gym_trained_run),
    Case("eval --record over an existing file", ["eval", "--run", "run", "--record", "a.gif"], 1, "already exists", both(gym_trained_run, write("a.gif", "mine"))),
    # RLHF (issue 13): sft, --init-from, --kl-coef, --reward-fn
    Case("sft --epochs 0", ["sft", "--epochs", "0"], 2, "--epochs must be >= 1"),
    Case("--init-from a missing run", [*T, "--init-from", "nope"], 1, "--init-from nope: run directory not found"),
    Case("--init-from a gymnasium run", [*T, "--init-from", "run"], 1, "is a run of CartPole-v1; RLHF starts from a text-QA run", gym_run),
    Case("--init-from with another vocabulary", [*T, "--init-from", "run", "--dataset", "d.yaml"], 1, "its vocabulary (", both(trained_run, write("d.yaml", GOOD_DATASET))),
    Case("negative --kl-coef", [*T, "--kl-coef", "-1"], 2, "--kl-coef must be >= 0.0"),
    Case("--reward-fn file missing", [*T, "--reward-fn", "nope.py:score"], 1, "nope.py not found"),
    Case("--reward-fn function missing", [*T, "--reward-fn", "r.py:score"], 1, "has no function 'score'", write("r.py", "def other(question, answer, target):\n    return 0.0\n")),
    Case("--reward-fn with the wrong signature", [*T, "--reward-fn", "r.py:score"], 1, "cannot take (question, answer, target)", write("r.py", "def score(answer):\n    return 0.0\n")),
    # ppoqa sweep (issue 14)
    Case("unparseable --search", ["sweep", "--search", "clip_coef"], 2, "expected NAME=V1,V2"),
    Case("--search of a name that is not a setting", ["sweep", "--search", "clip_coeff=0.1,0.2"], 2, "'clip_coeff' is not a setting"),
    Case("--search range for a setting that takes a list", ["sweep", "--search", "policy=log(1,2)"], 2, "takes a list of values, not a range"),
    Case("--search range without --trials", ["sweep", "--search", "learning_rate=log(1e-4,1e-2)"], 2, "needs --trials"),
    Case("unreachable --storage", ["sweep", "--search", "clip_coef=0.1", "--storage", "postgresql://u@127.0.0.1:9/x"], 1, "cannot open the storage"),
    Case("--report on a study that does not exist", ["sweep", "--report", "--study", "nope"], 1, "does not exist"),
    # advantage estimators (issue 23): --advantage, --group-size, --kl-in, compare
    Case("a group estimator with --group-size 1", [*T, "--advantage", "grpo", "--group-size", "1"], 2, "--group-size 1 leaves none"),
    Case("--kl-in loss without a reference", [*T, "--kl-in", "loss"], 2, "--kl-in loss puts a KL term toward a reference"),
    Case("an estimator flag on a gymnasium run", ["train", "--env", "CartPole-v1", "--advantage", "rloo"], 2, "--advantage is for text QA"),
    Case("compare with an unknown estimator", ["compare", "--estimators", "gae,ppo"], 2, "unknown estimator 'ppo'"),
    Case("dataset entry with a key given twice", [*T, "--dataset", "d.yaml"], 1, "line 4: key 'answer' is given twice", write("d.yaml", "pairs:\n  - question: Q\n    answer: a\n    answer: b\n")),
    Case("dataset with `pairs:` given twice", [*T, "--dataset", "d.yaml"], 1, "key 'pairs' is given twice", write("d.yaml", GOOD_DATASET + GOOD_DATASET)),
    Case("config setting given twice", [*T, "--config", "c.yaml"], 1, "line 2: 'learning_rate' is set twice (first on line 1)", write("c.yaml", "learning_rate: 0.01\nlearning_rate: 0.02\n")),
    Case("--storage journal: on a file that is not a journal", ["sweep", "--search", "clip_coef=0.1", "--storage", "journal:notes.txt"], 1, "is not an Optuna journal", write("notes.txt", "my notes\n")),
    Case("dataset with a lone surrogate escape", [*T, "--dataset", "d.yaml"], 1, "holds a lone surrogate (U+D800)", write("d.yaml", 'pairs:\n  - question: "a \\ud800 b?"\n    answer: b\n')),
    Case("dataset question too long to run the network over", ["train", "--iterations", "1", "--num-episodes", "64", "--hidden-size", "1024", "--dataset", "d.yaml"], 1, "the longest question plus its answer is 3,006 tokens", write("d.yaml", "pairs:\n  - question: " + " ".join(["word"] * 3000) + "\n    answer: b\n")),
    Case("--storage in-memory SQLite", ["sweep", "--search", "clip_coef=0.1", "--storage", "sqlite://"], 1, "in-memory SQLite"),
]  # fmt: skip


def run_case(case: Case, cwd: Path, json_mode: bool = False) -> Outcome:
    """Set up the case in cwd (fresh, empty) and run it there through CliRunner."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        case.setup(cwd)
        argv = [*case.argv, "--json"] if json_mode else list(case.argv)
        result = CliRunner(env={"PPOQA_DEBUG": "", "COLUMNS": "200"}).invoke(
            app, argv, input=case.stdin
        )
    finally:
        os.chdir(old)
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return Outcome(result.exit_code, result.stdout, result.stderr, exc)


def normalize(text: str) -> str:
    """Stable table text: our pid varies from run to run."""
    return re.sub(r"pid \d+", "pid <PID>", text.replace(str(os.getpid()), "<PID>"))


def _printf_escape(data: bytes) -> str:
    return "".join(
        "\\n" if b == 10 else chr(b) if 32 <= b < 127 and b != 39 else f"\\x{b:02x}" for b in data
    )


def render(outcomes: list[tuple[Case, Outcome]]) -> str:
    lines = [
        "# Bad inputs and what ppoqa says",
        "",
        "Generated by `python tests/make_bad_inputs_table.py` from the cases that",
        "`tests/test_reliability.py` runs (a test fails when this page is stale). Every case",
        "prints exactly one line on stderr and no traceback; with `--json` the same error is",
        'the only document on stdout: `{"error": {"code", "message", "hint"}}`, same exit code.',
        "Exit codes: 1 for a problem with a file, a run or a value in a file; 2 for wrong use",
        "of a command or a flag value (also in `--json` mode).",
        "",
        "| # | bad input | command | exit | stderr |",
        "|---|---|---|---|---|",
    ]
    for i, (case, out) in enumerate(outcomes, 1):
        command = "ppoqa " + shlex.join(case.argv)
        if case.stdin is not None:
            command = f"printf '{_printf_escape(case.stdin)}' | {command}"
        line = normalize(out.stderr.strip()).replace("|", "\\|").replace("`", "'")
        cmd = command.replace("|", "\\|")
        lines.append(f"| {i} | {case.what} | `{cmd}` | {out.exit_code} | {line} |")
    lines += [
        "",
        "Not in the table, tested elsewhere (`tests/test_reliability.py`, `tests/test_resume.py`,",
        "`tests/test_nothing_lost.py`, most as real processes): a lock file nobody holds (a killed",
        "training, or a pid now reused by another process) is taken over with a warning, since",
        "the lock is an OS lock (flock) that dies with its process; Ctrl-C during `train` saves,",
        "prints the resume command and exits 130, SIGTERM and SIGHUP do the same and exit 143",
        "and 129; NaN/Inf in the loss or the weights stops training naming the iteration and",
        "keeps the last good checkpoint; when the reader of the output goes away (`ppoqa eval |",
        "head -0`, `ppoqa --help | head -1`, `ppoqa train | head -1`) every command exits 0",
        "without a message and keeps what it saved; `--trace-iterations` beyond the run's",
        "iterations is a warning; files ppoqa writes keep the user's umask. What ppoqa promises",
        "about hangs, the user's code, the user's files, interrupted work and stdout, and the",
        "real-process test of each promise, is in [reliability.md](reliability.md).",
        "",
    ]
    return "\n".join(lines)


def run_all() -> list[tuple[Case, Outcome]]:
    outcomes = []
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            outcomes.append((case, run_case(case, Path(tmp))))
    return outcomes


def main() -> None:
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render(run_all()), encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)} ({len(CASES)} cases)")


if __name__ == "__main__":
    main()
