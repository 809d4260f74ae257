"""The `ppoqa` command line through typer's CliRunner, with small real training runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer.main
import yaml
from typer.testing import CliRunner

from ppo_cli.cli import app
from ppo_cli.config import Config
from ppo_cli.core.rundir import load_checkpoint
from ppo_cli.textqa.data import SPECIAL_TOKENS, parse_dataset
from ppo_cli.textqa.rewards import DEFAULT_REWARD

from .conftest import EXAMPLES

runner = CliRunner()

BUILTIN_ANSWERS = {
    "What is the capital of France?": "Paris",
    "What is 2+2?": "4",
    "What color is the sky?": "blue",
    "Who wrote Romeo and Juliet?": "Shakespeare",
    "What is the largest planet?": "Jupiter",
}


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PPOQA_DEBUG", raising=False)


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def one_error_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("ppoqa: error: "), text
    assert "Traceback" not in text
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """One default training run on the built-in dataset, shared by the module (~60 iterations)."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    result = invoke("train", "--run-dir", str(run_dir), "--seed", "0")
    assert result.exit_code == 0, result.stderr
    return run_dir, result


# --- help -----------------------------------------------------------------------------------


def command_names() -> list[str]:
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    names += [g.name for g in app.registered_groups if g.name]
    return names


def test_the_core_commands_are_registered() -> None:
    assert {"train", "eval", "ask"} <= set(command_names())


@pytest.mark.parametrize("command", [[], *([c] for c in command_names())])
def test_every_help_exits_zero(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage" in result.stdout
    assert result.stderr == ""


def test_no_arguments_prints_help_and_no_empty_error() -> None:
    result = invoke()
    assert "Usage" in result.stdout
    assert result.exit_code in (0, 2)
    assert "error" not in result.stderr


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("ppoqa ")


def _flags(command: str) -> dict[str, str | None]:
    """A command's option flags -> the help each shows."""
    params = typer.main.get_command(app).commands[command].params  # type: ignore[attr-defined]
    return {flag: p.help for p in params for flag in (*p.opts, *p.secondary_opts)}


def test_train_and_sweep_take_the_same_training_flags() -> None:
    # one list of training options: a flag added for train is a sweep flag too, with one help
    train, sweep = _flags("train"), _flags("sweep")
    runs_only = {"--seed", "--run-dir", "--resume", "--trace", "--trace-iterations",
                 "--show-every", "--quiet", "-q", "--json", "--help"}  # fmt: skip
    assert len(train) > 60
    assert {f: h for f, h in train.items() if f not in runs_only} == {
        f: h for f, h in sweep.items() if f in train and f not in runs_only
    }
    assert set(train) - set(sweep) == runs_only - {"--quiet", "-q", "--json", "--help"}


def test_settings_flags_take_help_and_defaults_from_config() -> None:
    from dataclasses import fields

    train, sft = _flags("train"), _flags("sft")
    for f in fields(Config):
        flag = f"--{f.name.replace('_', '-')}"
        if flag in train and f.name != "env_kwargs":  # its flag takes KEY=VALUE items, not a map
            assert (train[flag] or "").startswith(f.metadata["help"]), flag
    assert sft["--hidden-size"] == train["--hidden-size"]
    assert "[default: 0.01]" in (sft["--lr"] or "")  # sft's own rate, said in its help


# --- train ----------------------------------------------------------------------------------


def test_train_learns_the_builtin_set_and_writes_the_run_directory(trained) -> None:
    run_dir, result = trained
    assert "Final greedy evaluation" in result.stdout
    assert "Training math" in result.stdout and "gradient updates" in result.stdout
    assert "accuracy 5/5 = 100.0%" in result.stdout
    assert "ppoqa eval --run" in result.stderr  # progress and hints go to stderr

    for name in ("config.yaml", "metrics.jsonl", "dataset.yaml", "vocab.json", "checkpoint.pt"):
        assert (run_dir / name).is_file(), name
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    # the resolved defaults, every field, with the reward, cap and patience the run used
    resolved = {"reward": DEFAULT_REWARD, "iterations": 150, "stall_iterations": 40}
    assert cfg == {**Config().to_dict(), **resolved}

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == list(range(1, len(records) + 1))
    assert len(records) < 150  # stopped early at the target accuracy...
    assert records[-1]["eval_accuracy"] == 1.0  # ...because it reached 100 %
    for key in ("mean_reward", "loss", "approx_kl", "clipfrac", "entropy", "wall_seconds"):
        assert key in records[-1], key

    pairs = parse_dataset((run_dir / "dataset.yaml").read_text(), "dataset.yaml").pairs
    assert {p.question: p.answer for p in pairs} == BUILTIN_ANSWERS
    vocab = json.loads((run_dir / "vocab.json").read_text())
    assert vocab[:4] == list(SPECIAL_TOKENS)

    raw = torch.load(run_dir / "checkpoint.pt", weights_only=True)  # no pickled code needed
    assert raw["format_version"] >= 1
    ckpt = load_checkpoint(run_dir)  # the same file, checksum verified
    assert ckpt["vocab"] == vocab
    assert ckpt["iteration"] == len(records)
    assert ckpt["policy_spec"]["kind"] == "lstm"
    assert all(isinstance(v, torch.Tensor) for v in ckpt["policy"].values())


def test_train_json_prints_one_document_and_nothing_on_stderr(tmp_path: Path) -> None:
    result = invoke(
        "train", "--run-dir", str(tmp_path / "r"), "--iterations", "3", "--no-early-stop", "--json"
    )
    assert result.exit_code == 0
    assert result.stderr == ""  # no progress bar, no tables, no hints
    doc = json.loads(result.stdout)  # fails on anything but exactly one JSON document
    assert result.stdout.count("\n") == 1
    assert doc["iterations"] == 3 and doc["episodes"] == 3 * 64
    assert doc["run_dir"] == str(tmp_path / "r")
    assert 0.0 <= doc["final_accuracy"] <= 1.0
    assert len(doc["final_results"]) == 5
    for key in ("steps", "epochs", "gradient_updates", "wall_seconds"):
        assert key in doc


def read_metrics(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for r in records:
        r.pop("wall_seconds")
    return records


def test_same_seed_gives_the_same_metrics(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        args = ("--iterations", "6", "--no-early-stop", "--seed", seed, "--quiet")
        result = invoke("train", "--run-dir", str(tmp_path / name), *args)
        assert result.exit_code == 0, result.stderr
        runs[name] = read_metrics(tmp_path / name)
    assert len(runs["a"]) == 6
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]  # the comparison can tell seeds apart


def test_flags_override_the_config_file_which_overrides_defaults(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("iterations: 2\nseed: 5\ntarget_accuracy: null\nhidden-size: 16\n")
    run_dir = tmp_path / "r"
    result = invoke(
        "train", "--config", str(config), "--seed", "7", "--run-dir", str(run_dir), "-q"
    )
    assert result.exit_code == 0, result.stderr
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (saved["iterations"], saved["seed"], saved["hidden_size"]) == (2, 7, 16)
    assert saved["learning_rate"] == Config().learning_rate
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2


# --- eval -----------------------------------------------------------------------------------


def test_eval_json_has_accuracy_and_per_question_results(trained) -> None:
    run_dir, _ = trained
    result = invoke("eval", "--run", str(run_dir), "--json")
    assert result.exit_code == 0
    assert result.stderr == ""
    doc = json.loads(result.stdout)
    assert 0.0 <= doc["accuracy"] <= 1.0
    assert doc["accuracy"] == 1.0  # the fixture run reached 100 %
    assert len(doc["results"]) == doc["total"] == 5
    for row in doc["results"]:
        assert set(row) >= {"question", "target", "answer", "reward", "correct"}
        assert row["answer"] == BUILTIN_ANSWERS[row["question"]]
        assert row["reward"] == pytest.approx(9.9)


def test_eval_table(trained) -> None:
    run_dir, _ = trained
    result = invoke("eval", "--run", str(run_dir))
    assert result.exit_code == 0
    assert "Shakespeare" in result.stdout and "accuracy 5/5" in result.stdout


def test_eval_on_another_dataset(trained) -> None:
    run_dir, _ = trained
    path = EXAMPLES / "arithmetic.yaml"
    result = invoke("eval", "--run", str(run_dir), "--dataset", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["total"] == len(yaml.safe_load(path.read_text())["pairs"])
    assert 0.0 <= doc["accuracy"] <= 1.0


# --- ask ------------------------------------------------------------------------------------


def test_ask_prints_the_answer_alone(trained) -> None:
    run_dir, _ = trained
    result = invoke("ask", "What is 2+2?", "--run", str(run_dir))
    assert result.exit_code == 0
    assert result.stdout == "4\n"
    assert result.stderr == ""


@pytest.mark.parametrize("args", [["-"], []], ids=["dash", "piped"])
def test_ask_reads_one_question_per_line_from_stdin(trained, args: list[str]) -> None:
    run_dir, _ = trained
    questions = "What is 2+2?\nWhat color is the sky?\n\nWho wrote Romeo and Juliet?\n"
    result = invoke("ask", *args, "--run", str(run_dir), input=questions)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "4\nblue\nShakespeare\n"


def test_ask_json_prints_one_object_per_line(trained) -> None:
    run_dir, _ = trained
    questions = list(BUILTIN_ANSWERS)
    result = invoke("ask", "-", "--run", str(run_dir), "--json", input="\n".join(questions))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    docs = [json.loads(line) for line in lines]
    assert [(d["question"], d["answer"]) for d in docs] == [
        (q, BUILTIN_ANSWERS[q]) for q in questions
    ]
    assert all(d["familiar"] and 0 < d["confidence"] <= 1 for d in docs)


def test_ask_warns_about_unknown_words_and_still_answers(trained) -> None:
    run_dir, _ = trained
    result = invoke("ask", "What is 7+7, mate?", "--run", str(run_dir))
    assert result.exit_code == 0
    assert result.stdout.count("\n") == 1  # one answer line, whatever it says
    assert "warning" in result.stderr and "<UNK>" in result.stderr
    assert "'7'" in result.stderr and "'mate'" in result.stderr


def test_ask_is_case_insensitive(trained) -> None:
    run_dir, _ = trained
    result = invoke("ask", "what is 2+2?", "--run", str(run_dir))
    assert (result.stdout, result.stderr) == ("4\n", "")


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["ask", "What is 2+2?"], ["eval"]])
def test_no_trained_run_says_to_train_first(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(*command)
    assert result.exit_code == 1
    assert "ppoqa train" in one_error_line(result.stderr)
    assert result.stdout == ""


def test_a_missing_run_directory_is_one_line(tmp_path: Path) -> None:
    result = invoke("ask", "What is 2+2?", "--run", str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert str(tmp_path / "nope") in one_error_line(result.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--learning-rate", "-1"],
        ["train", "--lr", "0"],
        ["train", "--iterations", "abc"],
        ["train", "--iterations", "0"],
        ["train", "--gamma", "1.5"],
        ["train", "--policy", "cnn"],
        ["train", "--device", "tpu"],
        ["train", "--num-minibatches", "0"],
        ["train", "--bogus"],
        ["eval", "--episodes", "0"],
        ["nosuch"],
    ],
)
def test_bad_option_values_exit_2_with_one_line(args: list[str], tmp_path: Path) -> None:
    result = (
        invoke(*args, "--run-dir", str(tmp_path / "r")) if args[0] == "train" else invoke(*args)
    )
    assert result.exit_code == 2, (result.stdout, result.stderr)
    one_error_line(result.stderr)
    assert result.stdout == ""
    assert not (tmp_path / "r").exists()  # nothing was trained or written


def test_bad_option_with_json_is_a_json_error(tmp_path: Path) -> None:
    result = invoke("train", "--json", "--lr", "-1", "--run-dir", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert result.stderr == ""
    assert json.loads(result.stdout)["error"]["code"] == "usage"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("pairs:\n  - question: What is 2+2?\n", "pair 0 (line 2): missing 'answer'"),
        ("pairs: [\n", "not valid YAML"),
        ("pairs: []\n", "'pairs' is empty"),
    ],
)
def test_a_bad_dataset_is_one_line_naming_the_file(text: str, problem: str, write_dataset) -> None:
    path = write_dataset(text, "broken.yaml")
    result = invoke("train", "--dataset", str(path), "--run-dir", str(path.parent / "r"))
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert str(path) in line and problem in line
    assert not (path.parent / "r").exists()


def test_a_bad_dataset_with_json_is_a_json_error(write_dataset) -> None:
    path = write_dataset("name: x\n", "broken.yaml")
    result = invoke("train", "--dataset", str(path), "--json")
    assert result.exit_code == 1
    assert result.stderr == ""
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "dataset" and str(path) in error["message"]


def test_a_bad_value_in_the_config_file_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("learning_rate: -1\n")
    result = invoke("train", "--config", str(config), "--run-dir", str(tmp_path / "r"))
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert f"{config}: 'learning_rate'" in line and "--learning-rate" not in line


def test_the_console_script_keeps_output_files_and_exit_codes(tmp_path: Path) -> None:
    # main() ends the process with os._exit once the command is done (the interpreter's
    # teardown after `import torch` costs ~0.7 s): nothing written may be lost by that.
    import subprocess
    import sys

    def ppoqa(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "ppo_cli", *args]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)

    run = tmp_path / "run"
    done = ppoqa("train", "-q", "--json", "--run-dir", str(run))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["final_accuracy"] == 1.0  # exactly one JSON document
    assert load_checkpoint(run)["iteration"] >= 1
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert lines and all(json.loads(line) for line in lines)
    answer = ppoqa("ask", "What is 2+2?", "--run", str(run))
    assert (answer.returncode, answer.stdout.strip()) == (0, "4")
    missing = ppoqa("eval", "--run", str(tmp_path / "nope"))
    assert missing.returncode == 1 and missing.stderr.startswith("ppoqa: error:")
    assert ppoqa("train", "--bogus").returncode == 2
