"""Named rewards: what each pays for the issue's hedged and reordered answers, batched like the
environment scores them, and the refusals of rewards that cannot teach."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from ppo_cli.cli import app
from ppo_cli.config import Config
from ppo_cli.errors import ConfigError, DatasetError
from ppo_cli.textqa.data import parse_dataset
from ppo_cli.textqa.evaluate import reward_spec
from ppo_cli.textqa.rewards import (
    REWARD_NAMES,
    RewardSpec,
    answer_kind,
    explain_rewards,
    lcs_f1,
    prefix_credit,
    token_f1,
)


def pay(name: str, target: str, answer: str) -> float:
    (row,) = explain_rewards(target, [answer], [name])
    return row.final


@pytest.mark.parametrize(
    ("name", "hedge", "reordered"),
    [
        ("walkthrough", 0.0, 2.0),  # the walkthrough reward pays for both traps
        ("seed", 0.0, 2.0),  # its old name is still accepted
        ("exact", -2.0, -2.0),
        ("f1", -0.4, 2.0),  # F1 stops the hedge, not the word order
        ("prefix", -2.0, -2.0),  # order-aware: neither earns anything
        ("lcs", -0.4, 0.0),
        ("strict", -2.0, -2.0),  # only a clean beginning of the target earns credit
    ],
)
def test_what_each_reward_pays_for_the_issue_examples(
    name: str, hedge: float, reordered: float
) -> None:
    assert pay(name, "Warsaw", "Warsaw") == 10.0
    assert pay(name, "Warsaw", "Helsinki Warsaw Ankara Warsaw") == pytest.approx(hedge)
    assert pay(name, "Buenos Aires", "Aires Buenos") == pytest.approx(reordered)
    assert pay(name, "Buenos Aires", "Buenos Aires") == 10.0


def test_only_the_walkthrough_reward_pays_a_hedge_as_much_as_a_half_answer() -> None:
    for name in REWARD_NAMES:
        committed = pay(name, "Warsaw", "Helsinki")
        hedge = pay(name, "Warsaw", "Helsinki Warsaw Ankara Warsaw")
        # a hedge pays at least a wrong answer; every reward but walkthrough pays it far below +10
        assert committed <= hedge < 10.0
        if name != "walkthrough":
            assert hedge <= pay(name, "Buenos Aires", "Buenos") + 1e-6 or name == "f1"


def ids(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    t = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        t[i, : len(r)] = torch.tensor(r)
    return t, torch.tensor([len(r) for r in rows])


def test_credit_functions_by_hand_on_a_padded_batch() -> None:
    # target 5 6 7; answers: exact, reordered, prefix of two, one extra word, empty
    ans, ans_len = ids([[5, 6, 7], [7, 6, 5], [5, 6], [5, 6, 7, 9], []])
    tgt, tgt_len = ids([[5, 6, 7]] * 5)
    assert prefix_credit(ans, ans_len, tgt, tgt_len).tolist() == pytest.approx(
        [1.0, 0.0, 2 / 3, 3 / 4, 0.0]
    )
    # F1: P, R = (1,1), (1,1), (1, 2/3), (3/4, 1), (0, 0)
    assert token_f1(ans, ans_len, tgt, tgt_len).tolist() == pytest.approx(
        [1.0, 1.0, 0.8, 6 / 7, 0.0]
    )
    # LCS lengths 3, 1, 2, 3, 0
    assert lcs_f1(ans, ans_len, tgt, tgt_len).tolist() == pytest.approx(
        [1.0, 1 / 3, 0.8, 6 / 7, 0.0]
    )


def test_strict_pays_only_a_clean_beginning_of_the_target() -> None:
    assert pay("strict", "Buenos Aires", "Buenos") == pytest.approx(0.0)  # -2 + 4 * 1/2
    assert pay("strict", "Buenos Aires", "Buenos Aires Buenos") == -2.0
    assert pay("strict", "Buenos Aires", "Buenos Buenos") == -2.0
    assert pay("strict", "Warsaw", "Warsaw Warsaw") == -2.0


def test_padding_ids_never_count_as_matches() -> None:
    # both padded with 0 beyond their lengths: a 0 in the padding must not match
    ans, ans_len = torch.tensor([[4, 0, 0]]), torch.tensor([1])
    tgt, tgt_len = torch.tensor([[8, 0, 0]]), torch.tensor([1])
    for fn in (prefix_credit, token_f1, lcs_f1):
        assert float(fn(ans, ans_len, tgt, tgt_len)[0]) == 0.0


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("Buenos Aires", "exact"),
        ("Aires Buenos", "word_order"),
        ("Buenos Aires Buenos", "hedge"),
        ("Lima Buenos Aires", "hedge"),
        ("Buenos", "partial"),
        ("Lima", "wrong"),
        ("", "empty"),
    ],
)
def test_answer_kinds(answer: str, kind: str) -> None:
    assert answer_kind(answer.split(), ["Buenos", "Aires"]) == kind


PAIRS = "pairs:\n  - question: Capital of Argentina?\n    answer: Buenos Aires\n"


def test_the_dataset_names_its_reward_and_a_flag_overrides_it() -> None:
    data = parse_dataset("reward: f1\n" + PAIRS)
    assert reward_spec(Config(), data).name == "f1"
    assert reward_spec(Config(reward="exact"), data).name == "exact"
    assert reward_spec(Config(), parse_dataset(PAIRS)).name == "lcs"


def test_an_unknown_reward_name_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown reward 'pefix'") as exc:
        reward_spec(Config(), parse_dataset("reward: pefix\n" + PAIRS, "d.yaml"))
    assert "did you mean prefix" in exc.value.hint


def test_overlap_only_fits_the_seed_reward() -> None:
    data = parse_dataset("rewards: {overlap: 1}\n" + PAIRS, "d.yaml")
    with pytest.raises(DatasetError, match="'overlap' does not apply to reward 'lcs'"):
        reward_spec(Config(), data)
    assert reward_spec(Config(reward="seed"), data).overlap == 1.0


def test_a_reward_that_pays_a_wrong_answer_like_the_right_one_is_refused() -> None:
    data = parse_dataset("rewards: {correct: 1}\n" + PAIRS, "d.yaml")
    with pytest.raises(ConfigError, match="pays up to 2 for a wrong answer"):
        reward_spec(Config(), data)
    # the walkthrough reward on 4 distinct target words and correct 6: 2*4 - 2 = 6 >= 6
    four = (
        "reward: walkthrough\nrewards: {correct: 6}\n"
        "pairs:\n  - question: Q?\n    answer: a b c d\n"
    )
    with pytest.raises(ConfigError, match="reward 'walkthrough' pays up to 6"):
        reward_spec(Config(), parse_dataset(four, "d.yaml"))


def test_spec_scores_like_the_environment() -> None:
    spec = RewardSpec(name="prefix")
    ans, ans_len = ids([[5, 6], [6, 5]])
    tgt, tgt_len = ids([[5, 6], [5, 6]])
    final, exact, credit = spec.score(ans, ans_len, tgt, tgt_len)
    assert exact.tolist() == [True, False]
    assert final.tolist() == [10.0, -2.0]


def test_explain_reward_cli_defaults_and_json() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["explain-reward", "--json"])
    assert res.exit_code == 0, res.output
    import json

    doc = json.loads(res.stdout)
    answers = {r["answer"] for r in doc["rows"]}
    assert {"Helsinki Warsaw Ankara Warsaw", "Aires Buenos", "Buenos Aires", "Warsaw"} <= answers
    seed_hedge = next(
        r
        for r in doc["rows"]
        if r["reward"] == "walkthrough" and r["answer"].startswith("Helsinki W")
    )
    assert seed_hedge["final"] == 0.0 and seed_hedge["kind"] == "hedge"
    res = runner.invoke(
        app, ["explain-reward", "--target", "New Delhi", "--answer", "Delhi New", "--json"]
    )
    rows = json.loads(res.stdout)["rows"]
    assert {r["reward"]: r["final"] for r in rows}["prefix"] == -2.0
    # --target alone: its own right, hedged, reordered and partial answers, as --help says
    res = runner.invoke(app, ["explain-reward", "--target", "New York City", "--json"])
    kinds = {r["answer"]: r["kind"] for r in json.loads(res.stdout)["rows"]}
    assert kinds == {
        "New York City": "exact",
        "Oslo New York City Lima": "hedge",
        "City York New": "word_order",
        "New": "partial",
    }
    res = runner.invoke(app, ["explain-reward", "--reward", "nope"])
    assert res.exit_code == 2 and "unknown reward 'nope'" in res.stderr
