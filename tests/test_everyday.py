"""Everyday use, run as a new user would: the documented RLHF commands, doctor on each kind of
run, ask's confidence, 80-column views, large-dataset output, sweep objectives, run names."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ppo_cli.cli import app
from ppo_cli.teach.doctor import RunRecords, diagnose_records
from tests.conftest import EXAMPLES, ROOT

runner = CliRunner()

TOUR = [
    "ppoqa sft --run-dir runs/sft",
    "ppoqa train --init-from runs/sft --kl-coef 1.0 --reward-fn examples/proxy_paris.py:is_paris",
]


def documented(command: str) -> bool:
    """The command appears in the README or a docs page, as a user would copy it."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    return any(command in p.read_text(encoding="utf-8") for p in pages if p.is_file())


def invoke(*args: str) -> object:
    return runner.invoke(app, list(args))


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory with the repository's examples/, as after a checkout."""
    (tmp_path / "examples").symlink_to(EXAMPLES)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def newest_run(root: Path) -> Path:
    runs = [p for p in (root / "runs").iterdir() if p.name != "sft"]
    return max(runs, key=lambda p: p.stat().st_mtime)


# -- 1. the tour's RLHF commands train ---------------------------------------------------------


def test_the_tours_rlhf_commands_train_as_printed(in_tmp: Path) -> None:
    for command in TOUR:
        assert documented(command), f"not in the docs any more: {command}"
        res = runner.invoke(app, shlex.split(command)[1:])
        assert res.exit_code == 0, res.output
    # It trains: not "solved at iteration 1" on the gold accuracy SFT already has
    assert "solved" not in res.stderr
    assert "done: ran all 40 iterations" in res.stderr
    run = newest_run(in_tmp)
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 40 and all("kl" in m and "score" in m for m in metrics)
    # ...and a healthy KL run has nothing for doctor to report (it ends at 100 % gold)
    assert metrics[-1]["eval_accuracy"] == 1.0
    assert "ppoqa doctor found" not in res.stderr
    res = invoke("doctor", "--json")  # the newest run, like eval/ask/plot
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["run"] == str(Path("runs") / run.name)
    assert doc["findings"] == [] and doc["still_wrong"] == []


def test_an_rlhf_run_still_early_stops_when_asked(in_tmp: Path) -> None:
    assert invoke("sft", "--run-dir", "runs/sft", "-q").exit_code == 0
    res = invoke("train", "--init-from", "runs/sft", "--target-accuracy", "1.0", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["stop_reason"] == "solved" and doc["iterations"] < 40


# -- 2. doctor reads the kind of run --------------------------------------------------------


def test_doctor_names_reward_hacking_with_the_kl_remedy(in_tmp: Path) -> None:
    assert invoke("sft", "--run-dir", "runs/sft", "-q").exit_code == 0
    res = invoke(
        "train", "--init-from", "runs/sft", "--kl-coef", "0", "--reward-fn",
        "examples/proxy_paris.py:is_paris", "--run-dir", "runs/kl0", "-q",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = invoke("doctor", "--run", "runs/kl0", "--json")
    doc = json.loads(res.stdout)
    codes = [f["code"] for f in doc["findings"]]
    assert codes == ["reward_hacking"], doc
    assert "--kl-coef" in doc["findings"][0]["remedy"]
    assert doc["still_wrong"] and all(r["answer"] == "Paris" for r in doc["still_wrong"])
    text = invoke("doctor", "--run", "runs/kl0").stdout
    assert "[reward_hacking]" in text and "still wrong:" in text


def test_doctor_remedies_read_the_runs_settings_and_list_what_is_wrong(tmp_path: Path) -> None:
    run = str(tmp_path / "r")
    res = invoke(
        "train", "--iterations", "20", "--num-episodes", "8", "--learning-rate", "1e-9",
        "--run-dir", run, "-q",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(invoke("doctor", "--run", run, "--json").stdout)
    finding = next(f for f in doc["findings"] if f["code"] == "not_learning")
    assert "this run used 8" in finding["remedy"] and "--num-episodes 16" in finding["remedy"]
    assert len(doc["still_wrong"]) == round(5 * (1 - doc["final_accuracy"])) > 0
    text = invoke("doctor", "--run", run).stdout
    wrong = doc["still_wrong"][0]["question"]
    assert f"still wrong: {len(doc['still_wrong'])} of 5 questions" in text and wrong in text


def test_an_entropy_remedy_never_suggests_the_value_already_used() -> None:
    metrics = [
        {"iteration": i, "eval_accuracy": 0.4, "loss": 1.0, "entropy": 1.0 if i < 5 else 0.01}
        for i in range(1, 11)
    ]
    results = [{"question": "Q?", "target": "a", "answer": "b", "correct": False}]
    for ent, says in ((0.03, "e.g. 0.05"), (0.05, "above this run's 0.05 (e.g. 0.1)")):
        cfg = {"target_accuracy": 1.0, "reward": "lcs", "ent_coef": ent}
        found = diagnose_records(RunRecords(cfg, metrics, results, "stalled"))
        (collapse,) = [f for f in found if f.code == "entropy_collapse"]
        assert says in collapse.remedy


def test_doctor_does_not_call_a_solved_no_early_stop_run_out_of_budget(tmp_path: Path) -> None:
    run = str(tmp_path / "r")
    res = invoke("train", "--iterations", "8", "--no-early-stop", "--run-dir", run, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["final_accuracy"] == 1.0 and summary["iterations"] == 8
    assert summary["findings"] == []
    assert json.loads(invoke("doctor", "--run", run, "--json").stdout)["findings"] == []


# -- 7. smaller items ----------------------------------------------------------------------


def test_a_module_env_id_makes_a_run_folder_without_a_colon(in_tmp: Path) -> None:
    res = invoke(
        "train", "--env", "tests.user_envs:Corridor-v0", "--timesteps", "128", "--num-envs",
        "2", "--num-steps", "64", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    name = Path(json.loads(res.stdout)["run_dir"]).name
    assert ":" not in name and "tests.user_envs_Corridor-v0-s0" in name


# -- 3. ask knows when it doesn't know -----------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A solved run on the built-in set, and one that has barely trained."""
    root = tmp_path_factory.mktemp("ask")
    solved, raw = root / "solved", root / "raw"
    assert invoke("train", "--run-dir", str(solved), "-q", "--json").exit_code == 0
    res = invoke(
        "train", "--run-dir", str(raw), "-q", "--json", "--iterations", "1",
        "--num-episodes", "8", "--learning-rate", "1e-9",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return {"solved": solved, "raw": raw}


def ask_json(run: Path, *questions: str) -> list[dict]:
    res = runner.invoke(app, ["ask", "--run", str(run), "--json", "-"], input="\n".join(questions))
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_ask_reports_the_answers_probability(runs: dict[str, Path]) -> None:
    (trained,) = ask_json(runs["solved"], "What is 2+2?")
    (untrained,) = ask_json(runs["raw"], "What is 2+2?")
    assert trained["answer"] == "4" and 0 < untrained["confidence"] < trained["confidence"] <= 1
    res = invoke("ask", "--run", str(runs["solved"]), "-v", "What is 2+2?")
    assert res.stdout == "4\n"  # stdout stays the answer alone
    assert f"confidence {100 * trained['confidence']:.0f}%" in res.stderr


@pytest.mark.parametrize(
    ("question", "why"),
    [
        ("What comes after three?", "<UNK>: 'comes', 'after', 'three'"),
        ("Who is the sky?", "unlike every training question"),
    ],
)
def test_ask_flags_an_unfamiliar_question(runs: dict[str, Path], question: str, why: str) -> None:
    run = str(runs["solved"])
    res = invoke("ask", "--run", run, question)
    assert res.exit_code == 0 and res.stdout.count("\n") == 1  # still answers, data only
    assert res.stderr.startswith("ppoqa: warning: unfamiliar question") and why in res.stderr
    assert "confidence" in res.stderr
    (doc,) = ask_json(runs["solved"], question)
    assert doc["familiar"] is False and doc["nearest"] in BUILTIN
    strict = invoke("ask", "--run", run, "--strict", question)
    assert strict.exit_code == 3 and strict.stdout == res.stdout
    familiar = invoke("ask", "--run", run, "--strict", "what is 2+2?")
    assert (familiar.exit_code, familiar.stdout, familiar.stderr) == (0, "4\n", "")


BUILTIN = {
    "What is the capital of France?",
    "What is 2+2?",
    "What color is the sky?",
    "Who wrote Romeo and Juliet?",
    "What is the largest planet?",
}


# -- 5. large datasets: the periodic evaluation shows accuracy and the misses -----------------


def test_periodic_evaluation_of_a_larger_set_shows_the_misses_not_every_row(
    tmp_path: Path,
) -> None:
    res = runner.invoke(
        app,
        ["train", "--dataset", str(EXAMPLES / "capitals30.yaml"), "--iterations", "2",
         "--show-every", "1", "--run-dir", str(tmp_path / "r")],
        env={"COLUMNS": "80"},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    tables = res.stderr.split("Greedy evaluation, iteration ")[1:]
    assert len(tables) == 2
    for table in tables:
        rows = re.findall(r"│\s+(yes|no)\s+│", table)
        caption = re.search(r"accuracy (\d+)/30 = [\d.]+%; (\d+) wrong", table)
        assert caption, table
        right, wrong = int(caption[1]), int(caption[2])
        assert right + wrong == 30 and rows == ["no"] * min(wrong, 10)


def test_a_small_set_still_shows_every_question(tmp_path: Path) -> None:
    res = invoke("train", "--iterations", "1", "--show-every", "1", "--run-dir", str(tmp_path))
    table = res.stderr.split("Greedy evaluation, iteration 1")[1]
    assert len(re.findall(r"│\s+(yes|no)\s+│", table)) == 5


def test_the_gym_eval_table_keeps_the_digits_of_small_returns(tmp_path: Path) -> None:
    run = str(tmp_path / "r")
    res = invoke(
        "train", "--env", "tests.user_envs:Target-v0", "--timesteps", "128", "--num-envs", "2",
        "--num-steps", "64", "--run-dir", run, "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(invoke("eval", "--run", run, "--json", "--episodes", "3").stdout)
    table = invoke("eval", "--run", run, "--episodes", "3").stdout
    shown = [float(x) for x in re.findall(r"│\s+\d+\s+│\s+(-?[\d.]+)\s+│", table)]
    returns = doc["returns"]
    assert len(shown) == len(returns) == 3
    for s, r in zip(shown, returns, strict=True):
        assert abs(s - r) <= max(0.006 * abs(r), 0.005), (s, r, table)


# -- 6. sweeps that rank configurations that all solve -------------------------------------


def test_a_sweep_ranks_configurations_that_all_solve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    search = ["sweep", "--search", "learning_rate=0.002,0.01", "--seeds", "2", "-q"]
    res = invoke(*search, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["objective"] == "auc" and doc["metric"] == "greedy_accuracy_auc"
    configs = doc["configurations"]
    finals = [
        json.loads(Path(r, "metrics.jsonl").read_text().splitlines()[-1])["eval_accuracy"]
        for c in configs
        for r in c["runs"]
    ]
    assert finals == [1.0] * 4  # every seed of both solves: the final score ties...
    iqms = [c["iqm"] for c in configs]
    assert iqms[0] > iqms[1] and all(0 < v < 1 for v in iqms)  # ...the curve's area does not

    res = invoke(*search, "--objective", "iterations-to-solve", "--study", "its", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    scores = [s for c in doc["configurations"] for s in c["scores"]]
    assert doc["lower_is_better"] and all(s == int(s) and s >= 1 for s in scores)
    iqms = [c["iqm"] for c in doc["configurations"]]
    assert iqms == sorted(iqms)  # fewest iterations first
    text = invoke("sweep", "--report", "--study", "its").stdout
    assert "iterations_to_solve (lower is better)" in text

    import ppo_cli.plotting

    figures = []
    monkeypatch.setattr(
        ppo_cli.plotting, "save_figure", lambda fig, out: figures.append(fig) or out
    )
    res = invoke("plot", "--study", "its")
    assert res.exit_code == 0, res.output
    curve, bars = figures[0].axes[:2]
    for ax in (curve, bars):  # iterations are whole numbers on both axes
        ticks = ax.get_xticks()
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_a_bad_objective_is_a_usage_error(tmp_path: Path) -> None:
    res = invoke("sweep", "--search", "clip_coef=0.1,0.2", "--objective", "best", "--out",
                 str(tmp_path / "o"))  # fmt: skip
    assert res.exit_code == 2 and "--objective must be one of" in res.stderr


def test_a_gym_plot_smooths_few_points_lightly_and_marks_the_final_greedy_eval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = str(tmp_path / "r")
    res = invoke(
        "train", "--env", "tests.user_envs:Corridor-v0", "--timesteps", "3072", "--num-envs",
        "2", "--num-steps", "64", "--run-dir", run, "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    final = json.loads(res.stdout)["mean_return"]
    import ppo_cli.plotting

    figures = []
    monkeypatch.setattr(
        ppo_cli.plotting, "save_figure", lambda fig, out: figures.append(fig) or out
    )
    assert invoke("plot", "--run", run).exit_code == 0
    ax = figures[0].axes[0]
    points = [json.loads(x) for x in Path(run, "metrics.jsonl").read_text().splitlines()]
    logged = sum("episodic_return" in r for r in points)
    assert 20 <= logged < 30
    labels = ax.get_legend_handles_labels()[1]
    assert "smoothed (mean of last 2)" in labels, labels
    assert any(label.startswith(f"final greedy eval ({final:.3g}") for label in labels), labels


# -- 4. 80 columns -------------------------------------------------------------------------

NARROW = {"COLUMNS": "80"}
CUT_NUMBER = re.compile(r"\d…|…\d")


def narrow(*args: str, **kw: object) -> object:
    return runner.invoke(app, list(args), env=NARROW, **kw)


def widths_ok(text: str) -> bool:
    from rich.cells import cell_len

    return all(cell_len(line.rstrip()) <= 80 for line in text.splitlines())


@pytest.mark.parametrize(
    "command",
    ["train", "sft", "eval", "ask", "explain-gae", "explain-clip", "explain-reward", "plot",
     "doctor", "sweep"],
)  # fmt: skip
def test_help_at_80_columns_cuts_no_option_and_shows_no_bool(command: str) -> None:
    from typer.main import get_command

    from ppo_cli.cli import app as typer_app

    res = narrow(command, "--help")
    assert res.exit_code == 0, res.output
    assert "…" not in res.stdout and "<bool>" not in res.stdout
    assert widths_ok(res.stdout)
    click_command = get_command(typer_app).commands[command]  # type: ignore[attr-defined]
    for param in click_command.params:
        for name in [*param.opts, *param.secondary_opts]:
            if name.startswith("--"):
                assert re.search(rf"(^|[\s,/]){re.escape(name)}($|[\s,/])", res.stdout), name


def test_train_help_groups_its_options_in_panels() -> None:
    text = narrow("train", "--help").stdout
    panels = [line.strip() for line in text.splitlines() if re.fullmatch(r" \S.*", line)]
    for panel in ("Run", "Text QA", "PPO", "Gymnasium", "Output"):
        assert panel in panels, panels
    assert text.index("--dataset") < text.index("--num-envs")  # Run before Gymnasium


def test_wide_help_shows_switches_without_a_type() -> None:
    res = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "160"})
    assert res.exit_code == 0 and "--no-early-stop" in res.stdout
    assert "<bool>" not in res.stdout and "<int>" in res.stdout


def test_explain_clip_at_80_columns_shows_every_number_whole() -> None:
    doc = json.loads(runner.invoke(app, ["explain-clip", "--json"]).stdout)
    text = narrow("explain-clip").stdout
    assert not CUT_NUMBER.search(text) and widths_ok_tables(text)
    for example in doc["examples"]:
        for row in example["rows"]:
            for key in ("ratio", "clipped_ratio", "advantage", "unclipped", "clipped"):
                assert f"{row[key]:.3f}" in text, (key, row[key])


def widths_ok_tables(text: str) -> bool:
    """Table lines fit 80 columns (prose lines may be longer: the terminal wraps them)."""
    from rich.cells import cell_len

    boxes = ("│", "┃", "─", "━")
    return all(
        cell_len(ln.rstrip()) <= 80 for ln in text.splitlines() if any(b in ln for b in boxes)
    )


def test_explain_gae_and_a_trace_at_80_columns_cut_no_number(tmp_path: Path) -> None:
    text = narrow("explain-gae").stdout
    assert not CUT_NUMBER.search(text) and "…" not in text
    res = narrow("train", "--iterations", "1", "--trace", "-q", "--run-dir", str(tmp_path / "r"))
    assert res.exit_code == 0, res.output
    assert "trace of iteration 1" in res.stderr
    assert not CUT_NUMBER.search(res.stderr) and widths_ok_tables(res.stderr)
    assert "normalized A" in res.stderr and "clip·A" in res.stderr  # split, not dropped


def complete(*words: str) -> list[str]:
    """What TAB offers after `ppoqa WORDS` (bash completion, as typer's script asks)."""
    res = runner.invoke(
        app,
        [],
        env={
            "_PPOQA_COMPLETE": "complete_bash",
            "COMP_WORDS": " ".join(["ppoqa", *words]),
            "COMP_CWORD": str(len(words)),
        },
        prog_name="ppoqa",
    )
    return res.stdout.split()


def test_tab_completes_choices_and_registered_env_ids() -> None:
    assert complete("train", "--policy", "") == ["lstm", "transformer", "mlp"]
    rewards = ["lcs", "strict", "prefix", "f1", "exact", "walkthrough"]
    assert complete("train", "--reward", "") == rewards
    assert complete("train", "--preset", "") == ["fast", "balanced", "quality"]
    assert set(complete("train", "--env", "Cart")) == {"CartPole-v0", "CartPole-v1"}
    assert "text-qa" in complete("train", "--env", "")
    assert complete("sweep", "--objective", "") == ["auc", "final", "iterations-to-solve"]


def test_the_completed_reward_names_are_the_rewards() -> None:
    from ppo_cli.config import REWARD_CHOICES
    from ppo_cli.textqa.rewards import REWARD_NAMES

    assert set(REWARD_CHOICES) == set(REWARD_NAMES)


def test_root_help_and_explain_reward_at_80_columns() -> None:
    res = narrow("--help")
    assert res.exit_code == 0 and "<bool>" not in res.stdout and "…" not in res.stdout
    assert "--install-completion" in res.stdout and "sweep" in res.stdout
    text = narrow("explain-reward").stdout
    assert "…" not in text and "word_order" in text and widths_ok_tables(text)


def test_a_reward_fn_runs_findings_name_the_function_not_the_named_rewards() -> None:
    rows = [("Q1?", "a", "Paris"), ("Q2?", "b", "Paris"), ("Q3?", "c", "Paris"),
            ("Q4?", "d e", "e d"), ("Q5?", "Paris", "Paris")]  # fmt: skip
    results = [{"question": q, "target": t, "answer": a, "correct": a == t} for q, t, a in rows]
    metrics = [
        {"iteration": i, "eval_accuracy": 0.2, "loss": 1.0, "entropy": 1.0 if i == 1 else 0.01,
         "score": 0.1 * i}
        for i in range(1, 4)
    ]  # fmt: skip
    cfg = {"target_accuracy": None, "reward": "lcs", "reward_fn": "proxy.py:is_paris"}
    found = diagnose_records(RunRecords(cfg, metrics, results, "budget"))
    assert [f.code for f in found] == ["same_answer"]
    assert "--reward-fn pays" in found[0].remedy and "--ent-coef" not in found[0].remedy
    # the same answers after a fall from 100 % with the KL growing: reward hacking alone
    hacked = [dict(m, eval_accuracy=1.0 if m["iteration"] == 1 else 0.2, kl=0.5 * m["iteration"])
              for m in metrics]  # fmt: skip
    cfg["init_from"] = "runs/sft"
    found = diagnose_records(RunRecords(cfg, hacked, results, "budget"))
    assert [f.code for f in found] == ["reward_hacking"]


def test_a_short_text_runs_plot_counts_iterations_in_whole_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = str(tmp_path / "r")
    assert (
        invoke("train", "--iterations", "2", "--num-episodes", "8", "--run-dir", run).exit_code == 0
    )
    import ppo_cli.plotting

    figures = []
    monkeypatch.setattr(
        ppo_cli.plotting, "save_figure", lambda fig, out: figures.append(fig) or out
    )
    assert invoke("plot", "--run", run).exit_code == 0
    iteration_axes = [ax for ax in figures[0].axes if ax.get_xlabel() == "iteration"]
    assert iteration_axes
    for ax in iteration_axes:
        assert all(float(t).is_integer() for t in ax.get_xticks()), ax.get_xticks()


def test_every_explain_view_fits_80_columns_prose_included() -> None:
    """The worked lines ("t=0: δ = ... = 1.590") wrap at spaces instead of running past 80
    columns, where a terminal would cut a number in two."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "80"}
    for command in ("explain-gae", "explain-clip", "explain-reward"):
        res = subprocess.run(
            [sys.executable, "-m", "ppo_cli", command], capture_output=True, text=True, env=env,
            timeout=120,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        wide = [line for line in res.stdout.splitlines() if len(line) > 80]
        assert wide == [], (command, wide)
