"""The budget (cap, stall stop, stop reason) and `ppoqa doctor` on real and constructed runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ppo_cli.budget import StallDetector, default_iterations, default_stall_iterations
from ppo_cli.cli import app
from ppo_cli.config import Config
from ppo_cli.doctor import CODES, RunRecords, diagnose, diagnose_records
from ppo_cli.trainer import Callbacks, train

runner = CliRunner()


def test_the_default_cap_grows_with_the_answer_words_and_the_patience_stays() -> None:
    assert default_iterations(5) == default_iterations(120) == 150
    assert default_iterations(1000) > default_iterations(600) > 150
    assert default_stall_iterations(5) == 40 and default_stall_iterations(1000) == 40


def test_stall_detector_counts_from_the_last_improvement() -> None:
    s = StallDetector(patience=3)
    for it, acc in [(1, 0.1), (2, 0.5), (3, 0.5), (4, 0.4)]:
        s.observe(it, acc)
    assert not s.stalled(4) and s.stalled(5)
    assert StallDetector(patience=0).stalled(10**6) is False  # 0 turns the rule off


def test_a_solved_run_says_so_and_has_no_findings(tmp_path: Path) -> None:
    res = runner.invoke(app, ["train", "--run-dir", str(tmp_path / "r"), "--json", "-q"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["final_accuracy"] == 1.0 and doc["stop_reason"] == "solved"
    assert doc["findings"] == []
    res = runner.invoke(app, ["doctor", "--run", str(tmp_path / "r"), "--json"])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["findings"] == [] and doc["still_wrong"] == [] and doc["final_accuracy"] == 1.0


def test_a_stalled_run_stops_and_says_why(tmp_path: Path) -> None:
    cfg = Config(iterations=50, stall_iterations=2, learning_rate=1e-9, num_episodes=8)
    result = train(cfg, tmp_path / "r", Callbacks())
    assert result.stop_reason == "stalled" and result.iterations < 50
    assert result.stop_message.startswith("stalled: greedy accuracy has not improved")


def test_a_short_budget_is_reported_as_exhausted(tmp_path: Path) -> None:
    run = tmp_path / "r"
    res = runner.invoke(
        app, ["train", "--iterations", "2", "--num-episodes", "8", "--run-dir", str(run), "-q"]
    )
    assert res.exit_code == 0, res.output
    assert "ppoqa: budget: all 2 iterations used" in res.stderr
    assert "[budget_exhausted]" in res.stderr  # train prints the findings at its end
    res = runner.invoke(app, ["doctor", "--run", str(run), "--json"])
    codes = [f["code"] for f in json.loads(res.stdout)["findings"]]
    assert "budget_exhausted" in codes
    for f in json.loads(res.stdout)["findings"]:
        assert set(f) == {"code", "message", "evidence", "remedy"} and f["code"] in CODES


def rec(results: list[tuple[str, str, str]], metrics=None, **cfg) -> RunRecords:
    rows = [{"question": q, "target": t, "answer": a, "correct": a == t} for q, t, a in results]
    return RunRecords(
        {"target_accuracy": 1.0, "reward": "seed", **cfg},
        metrics or [{"iteration": 1, "eval_accuracy": 0.5, "loss": 1.0, "entropy": 1.0}],
        rows,
        "stalled",
    )


def codes(findings) -> list[str]:
    return [f.code for f in findings]


def test_hedging_word_order_and_same_answer_come_from_the_final_answers() -> None:
    found = diagnose_records(
        rec(
            [
                ("Poland?", "Warsaw", "Helsinki Warsaw Ankara Warsaw"),
                ("Argentina?", "Buenos Aires", "Aires Buenos"),
                ("Peru?", "Lima", "Lisbon"),
                ("Chile?", "Santiago", "Lisbon"),
                ("Cuba?", "Havana", "Lisbon"),
            ]
        )
    )
    assert codes(found) == ["same_answer", "hedging", "word_order"]
    hedge = found[1]
    assert hedge.evidence["examples"][0]["answer"] == "Helsinki Warsaw Ankara Warsaw"
    assert "--reward lcs" in hedge.remedy  # the seed reward is the cause


def test_curves_give_forgetting_loss_exploding_entropy_collapse_not_learning() -> None:
    rising_then_falling = [
        {"iteration": i, "eval_accuracy": a, "loss": 1.0, "entropy": 1.0}
        for i, a in enumerate([0.1, 0.6, 0.8, 0.3], 1)
    ]
    found = diagnose_records(rec([("Q?", "a", "b")], rising_then_falling))
    assert codes(found) == ["forgetting"]
    assert found[0].evidence["best_iteration"] == 3

    flat = [
        {
            "iteration": i,
            "eval_accuracy": 0.0,
            "train_accuracy": 0.0,
            "loss": 5.0,
            "entropy": 0.01 if i > 10 else 1.0,
        }
        for i in range(1, 31)
    ]
    flat[20]["loss"] = float("nan")
    found = diagnose_records(rec([("Q?", "a", "b")], flat))
    assert codes(found) == ["not_learning", "loss_exploding", "entropy_collapse"]
    assert found[1].evidence["iterations"] == [21]


@pytest.mark.parametrize("what", ["missing", "file", "no metrics", "no checkpoint", "gym"])
def test_doctor_refuses_a_missing_or_half_written_run(tmp_path: Path, what: str) -> None:
    run = tmp_path / "run"
    if what == "file":
        run.write_text("x")
    elif what != "missing":
        run.mkdir()
        env = "CartPole-v1" if what == "gym" else "text-qa"
        (run / "config.yaml").write_text(f"env: {env}\n")
        if what == "no checkpoint":
            (run / "metrics.jsonl").write_text('{"iteration": 1}\n')
    res = runner.invoke(app, ["doctor", "--run", str(run)])
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith("ppoqa: error:") and len(res.stderr.splitlines()) == 1
    assert "Traceback" not in res.stderr


def test_diagnose_reads_a_real_run(tmp_path: Path) -> None:
    train(Config(iterations=1, num_episodes=8), tmp_path / "r", Callbacks())
    assert "budget_exhausted" in codes(diagnose(tmp_path / "r"))


def test_a_stalled_run_ends_with_the_weights_of_its_best_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The greedy accuracies 0.2, 0.6, 0.4, 0.4, ... stall after iteration 2: the run keeps
    iteration 2's weights and answers, the same weights a 2-iteration run of the seed ends with."""
    import torch

    from ppo_cli import tasks
    from ppo_cli.checkpointing import load_checkpoint
    from ppo_cli.evaluate import QAResult

    calls = {"n": 0}

    def scripted(policy: object, qa: object) -> list[QAResult]:
        calls["n"] += 1
        right = {1: 1, 2: 3}.get(calls["n"], 2)  # of 5 questions
        return [QAResult("q", "a", "a" if i < right else "b", 0.0, i < right) for i in range(5)]

    monkeypatch.setattr(tasks, "evaluate_qa", scripted)
    cfg = Config(iterations=20, stall_iterations=2, num_episodes=8, target_accuracy=None)
    result = train(cfg, tmp_path / "stalled", Callbacks())
    assert result.stop_reason == "stalled" and result.iterations == 4
    assert result.final_accuracy == 0.6
    assert result.stop_message.endswith("kept iteration 2's weights (60.0%)")
    calls["n"] = 0
    train(Config(**{**cfg.__dict__, "iterations": 2}), tmp_path / "two", Callbacks())
    kept = load_checkpoint(tmp_path / "stalled")["policy"]
    two = load_checkpoint(tmp_path / "two")["policy"]
    assert all(torch.equal(kept[k], two[k]) for k in two)
