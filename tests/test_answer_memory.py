"""The answer memory and the exploration probes (ppo_cli.textqa.answer_memory), and what a user of a
large dataset sees of them: the plan line before training and the progress it buys."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from typer.testing import CliRunner

from ppo_cli.cli import app
from ppo_cli.textqa.answer_memory import AnswerMemory
from ppo_cli.textqa.budget import Plan, StallDetector, stall_min_gain
from ppo_cli.textqa.data import END_ID, PAD_ID

runner = CliRunner()
T = 4  # max steps of the toy memories


def _actions(*rows: list[int]) -> torch.Tensor:
    out = torch.full((len(rows), T), PAD_ID, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out


def test_the_memory_keeps_each_questions_best_answer_and_replays_only_what_beats_the_batch() -> (
    None
):
    mem = AnswerMemory(3, T, torch.tensor([END_ID, 10, 11, 12]))
    q = torch.tensor([0, 0, 1])
    improved = mem.observe(
        q, torch.tensor([1.0, 5.0, -2.0]), _actions([10, END_ID], [11, END_ID], [12, END_ID]),
        torch.tensor([False, True, False]),
    )  # fmt: skip
    assert improved == 2
    assert mem.best_return.tolist()[:2] == [5.0, -2.0] and mem.best_return[2] == -float("inf")
    assert mem.best_actions[0, :2].tolist() == [11, END_ID]
    assert abs(mem.exact_share - 1 / 3) < 1e-6
    # a worse answer never replaces a better one
    mem.observe(torch.tensor([0]), torch.tensor([2.0]), _actions([12]), torch.tensor([False]))
    assert mem.best_actions[0, 0] == 11
    # replayed: questions of the batch whose memory beats every new sample; not question 2
    # (nothing remembered) and not question 1 (sampled as well as its memory now)
    replay = mem.replay_questions(torch.tensor([0, 1, 2]), torch.tensor([0.0, -2.0, 9.0]))
    assert replay.tolist() == [0]


def test_probes_try_first_words_without_repeats_until_all_were_tried() -> None:
    columns = torch.tensor([END_ID, 10, 11, 12, 13])
    mem = AnswerMemory(1, T, columns)
    logits = torch.tensor([[-1e9, 0.0, 0.0, 0.0, 0.0]])  # <END> masked as a first token
    seen: list[int] = []
    for _ in range(2):
        q, force = mem.probe_force(torch.tensor([0]), logits, 2, T)
        assert q.tolist() == [0, 0]
        seen += force[:, 0].tolist()
    assert sorted(seen) == [10, 11, 12, 13]  # four draws, four different words, never <END>
    q, force = mem.probe_force(torch.tensor([0]), logits, 3, T)  # all tried: start over
    assert len(set(force[:, 0].tolist())) == 3 and END_ID not in force[:, 0].tolist()


def test_probes_also_edit_a_partly_right_remembered_answer() -> None:
    mem = AnswerMemory(1, T, torch.tensor([10, 11, 12, 13, 14, 15]))
    best = _actions([11, 12, END_ID])
    mem.observe(torch.tensor([0]), torch.tensor([1.0]), best, torch.tensor([False]))
    q, force = mem.probe_force(torch.tensor([0]), torch.zeros(1, 6), 5, T)
    rows = force.tolist()
    new = [r[0] for r in rows[:4]] + [rows[4][1]]  # the five words the probes try
    assert 11 not in new[:4] and len(set(new)) == 5  # untried words, all different
    assert rows[0] == [new[0], PAD_ID, PAD_ID, PAD_ID]  # the policy continues
    assert rows[1] == [new[1], END_ID, PAD_ID, PAD_ID]  # the new word alone
    assert rows[2] == [new[2], 12, END_ID, PAD_ID]  # replaces the first word
    assert rows[3] == [new[3], 11, 12, END_ID]  # goes before the answer
    assert rows[4][0] == 11 and rows[4][2:] == [12, END_ID]  # goes after its first word
    # and the remembered hedge shortened at either end: "11 12" -> "12", "11"
    assert rows[5:] == [[12, END_ID, PAD_ID, PAD_ID], [11, END_ID, PAD_ID, PAD_ID]]
    assert q.tolist() == [0] * 7


def test_the_stall_rule_of_a_large_set_wants_a_hundredth_of_the_questions() -> None:
    s = StallDetector(patience=3, min_gain=stall_min_gain(1000))
    for it, acc in [(1, 0.50), (2, 0.505), (3, 0.508), (4, 0.509)]:
        s.observe(it, acc)
    assert s.best == 0.509 and s.stalled(4)  # +0.9 points in 3 iterations: not progress
    assert "gained 1.0 points" in s.describe(4)
    small = StallDetector(patience=3, min_gain=stall_min_gain(30))
    for it, acc in [(1, 0.5), (2, 0.5 + 1 / 30), (3, 0.5 + 1 / 30)]:
        small.observe(it, acc)
    assert not small.stalled(4)  # one question of 30 is progress


def test_the_plan_says_iterations_and_minutes_and_the_remedy_of_a_long_run() -> None:
    plan = Plan("big.yaml", 1000, 600, 100, 375, 2.0)
    assert plan.line() == (
        "big.yaml: 1,000 pairs, 600 answer words: about 100 iterations (~3 min on this "
        "machine), at most 375 (~12 min)"
    )
    assert not plan.too_long and plan.eta(50, 100.0) == "~2 min left"
    slow = Plan("big.yaml", 1000, 600, 100, 375, 60.0)
    assert slow.too_long and "ppoqa sft" in slow.remedy() and "--init-from" in slow.remedy()


def _flashcards(path: Path, n: int) -> Path:
    """n questions whose one-word answers are all different: the kind of set plain PPO
    forgets its rare finds on."""
    words = [f"w{i:03d}" for i in range(n)]
    pairs = [{"question": f"What is card {i}?", "answer": w} for i, w in enumerate(words)]
    path.write_text(yaml.safe_dump({"pairs": pairs}))
    return path


def test_train_says_what_a_dataset_will_cost_before_training(tmp_path: Path) -> None:
    data = _flashcards(tmp_path / "cards.yaml", 60)
    res = runner.invoke(
        app,
        ["train", "--dataset", str(data), "--iterations", "2", "--run-dir", str(tmp_path / "r")],
        env={"COLUMNS": "80"},
    )
    assert res.exit_code == 0, res.output
    first = res.stderr.splitlines()[0]
    assert first.startswith("ppoqa: cards.yaml: 60 pairs, 60 answer words: about ")
    assert "on this machine), at most 2 " in first
    res = runner.invoke(
        app, ["train", "--dataset", str(data), "--iterations", "1", "--json",
              "--run-dir", str(tmp_path / "j")],
    )  # fmt: skip
    assert res.exit_code == 0 and res.stderr == ""
    plan = json.loads(res.stdout)["plan"]
    assert plan["pairs"] == 60 and plan["cap"] == 1 and plan["seconds_per_iteration"] > 0


def test_the_memory_and_probes_learn_distinct_answers_plain_sampling_does_not(
    tmp_path: Path,
) -> None:
    data = _flashcards(tmp_path / "cards.yaml", 60)
    accuracy = {}
    for name, flags in {"default": [], "plain": ["--no-answer-memory", "--probes", "0"]}.items():
        res = runner.invoke(
            app,
            ["train", "--dataset", str(data), "--iterations", "25", "--json", "-q",
             "--run-dir", str(tmp_path / name), *flags],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        doc = json.loads(res.stdout)
        accuracy[name] = doc["final_accuracy"]
        metrics = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        last = json.loads(metrics[-1])
        assert ("probe_episodes" in last) == (name == "default")
    assert accuracy["default"] >= 0.9 and accuracy["plain"] < 0.5, accuracy


def test_doctor_names_the_warm_start_when_a_large_set_runs_out_of_budget() -> None:
    from ppo_cli.teach.doctor import RunRecords, diagnose_records

    metrics = [{"iteration": i, "eval_accuracy": 0.5, "loss": 1.0} for i in range(1, 31)]
    results = [
        {"question": f"Q{i}?", "target": f"a{i}", "answer": f"a{i}", "correct": i % 2 == 0}
        for i in range(300)
    ]
    cfg = {"target_accuracy": 1.0, "reward": "lcs", "ent_coef": 0.03}
    found = diagnose_records(RunRecords(cfg, metrics, results, "budget"))
    (budget,) = [f for f in found if f.code == "budget_exhausted"]
    assert "ppoqa sft" in budget.remedy and "--init-from" in budget.remedy
    assert "--target-accuracy 0.9" in budget.remedy
