"""The advantage estimators (GAE, GRPO, Dr. GRPO, RLOO, REINFORCE++) by hand, the loss
aggregations, the KL term in the loss, their defaults in the settings chain, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from ppo_cli.cli import app
from ppo_cli.config import resolve
from ppo_cli.core.optim import PlainAdam
from ppo_cli.core.ppo import Batch, UpdateSettings, aggregate, ppo_loss, ppo_update
from ppo_cli.core.rundir import METRICS
from ppo_cli.errors import UsageError
from ppo_cli.textqa import estimators
from ppo_cli.textqa.policies import build_policy

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PPOQA_DEBUG", raising=False)


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def one_error_line(result: Any, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ppoqa: error: ") and "(hint: " in lines[0], lines[0]
    return lines[0]


# Two questions, three completions each: rewards 10, 0, 2 and 5, 5, 5 (an all-equal group).
R = torch.tensor([10.0, 0.0, 2.0, 5.0, 5.0, 5.0])
G = torch.tensor([0, 0, 0, 1, 1, 1])


def test_grpo_is_the_group_z_score_by_hand() -> None:
    mean, std = 4.0, ((36 + 16 + 4) / 2) ** 0.5  # unbiased std of 10, 0, 2
    adv = estimators.grpo(R, G)
    expected = [(10 - mean) / (std + 1e-4), (0 - mean) / (std + 1e-4), (2 - mean) / (std + 1e-4)]
    assert adv[:3].tolist() == pytest.approx(expected)
    assert adv[3:].tolist() == [0.0, 0.0, 0.0]  # all equal: no signal at all


def test_dr_grpo_only_centres() -> None:
    assert estimators.dr_grpo(R, G).tolist() == pytest.approx([6.0, -4.0, -2.0, 0, 0, 0])


def test_rloo_leaves_each_completion_out_of_its_own_baseline() -> None:
    # 10 - mean(0, 2) = 9; 0 - mean(10, 2) = -6; 2 - mean(10, 0) = -3
    assert estimators.rloo(R, G).tolist() == pytest.approx([9.0, -6.0, -3.0, 0, 0, 0])
    # RLOO is Dr. GRPO scaled by G / (G - 1)
    assert estimators.rloo(R, G) == pytest.approx(estimators.dr_grpo(R, G) * 3 / 2)


def test_a_group_of_one_gets_no_group_advantage() -> None:
    one = torch.tensor([0, 1])
    for fn in (estimators.grpo, estimators.dr_grpo, estimators.rloo):
        assert fn(torch.tensor([3.0, 7.0]), one).tolist() == [0.0, 0.0]


def test_reinforce_pp_normalizes_returns_to_go_over_the_batch() -> None:
    rewards = torch.tensor([[-0.1, 10.0, 0.0], [-2.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    rtg = estimators.returns_to_go(rewards, mask.float())
    assert rtg.flatten().tolist() == pytest.approx([9.9, 10.0, 0.0, -2.0, 0.0, 0.0])
    adv = estimators.reinforce_pp(rewards, mask.float())
    real = torch.tensor([9.9, 10.0, -2.0])
    expected = (real - real.mean()) / (real.std() + 1e-8)
    assert adv[mask].tolist() == pytest.approx(expected.tolist(), abs=1e-5)
    assert adv[~mask].tolist() == [0.0, 0.0, 0.0]


def test_compute_spreads_a_completion_advantage_over_its_real_tokens() -> None:
    rewards = torch.tensor([[0.0, 1.0], [0.0, 0.0], [3.0, 0.0], [1.0, 0.0]])
    mask = torch.tensor([[True, True], [True, False], [True, False], [True, False]])
    est = estimators.compute("dr_grpo", rewards, mask, torch.tensor([0, 0, 1, 1]))
    assert est.advantages.flatten().tolist() == pytest.approx([0.5, 0.5, -0.5, 0, 1, 0, -1, 0])


def test_gae_through_compute_matches_the_rollout() -> None:
    rewards = torch.tensor([[0.0, 10.0]])
    values = torch.tensor([[5.0, 8.0]])
    dones = torch.tensor([[0.0, 1.0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    est = estimators.compute("gae", rewards, mask, torch.zeros(1, dtype=torch.long), values, dones)
    d1 = 10.0 - 8.0
    d0 = 0.0 + 0.99 * 8.0 - 5.0
    assert est.advantages[0].tolist() == pytest.approx([d0 + 0.99 * 0.95 * d1, d1])


# --- loss aggregation and the KL term ---------------------------------------------------------


def test_loss_aggregations_by_hand() -> None:
    x = torch.tensor([[1.0, 3.0, 0.0], [5.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert float(aggregate(x, mask, "token")) == pytest.approx(9 / 3)
    assert float(aggregate(x, mask, "sequence")) == pytest.approx((2 + 5) / 2)
    assert float(aggregate(x, mask, "constant")) == pytest.approx(9 / 6)


def test_kl_in_the_loss_pulls_toward_the_reference() -> None:
    new = torch.tensor([[-0.5, -1.0]], requires_grad=True)
    ref = torch.tensor([[-1.0, -1.0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    zeros = torch.zeros(1, 2)
    parts = ppo_loss(
        new, new.detach(), zeros, zeros, zeros, zeros, zeros, mask,
        use_critic=False, ref_logprob=ref, kl_coef=1.0,
    )  # fmt: skip
    log_r = torch.tensor([-0.5, 0.0])
    assert float(parts.kl) == pytest.approx(float((log_r.exp() - 1 - log_r).mean()))
    parts.loss.backward()
    assert new.grad[0, 0] > 0  # gradient descent lowers log pi where pi > pi_ref
    assert float(parts.value_loss) == 0.0


def test_critic_free_update_leaves_the_value_head_alone() -> None:
    torch.manual_seed(0)
    policy = build_policy({"kind": "lstm", "vocab_size": 12, "hidden_size": 8})
    policy.use_critic = False
    before = policy.critic.weight.detach().clone()
    n, t = 6, 2
    obs = torch.randint(4, 12, (n, 5))
    obs[:, 3] = 3  # START_ID sits before the answer
    actions = torch.randint(4, 12, (n, t))
    logp, _, value = policy.evaluate(obs, actions)
    assert value.abs().sum() == 0  # the head is not run
    batch = Batch(
        obs, actions, logp.detach(), torch.zeros(n, t), torch.randn(n, t), torch.zeros(n, t),
        torch.ones(n, t, dtype=torch.bool),
    )  # fmt: skip
    opt = PlainAdam(policy.parameters(), lr=0.1)
    stats = ppo_update(
        policy, opt, batch, UpdateSettings(num_minibatches=2, use_critic=False, norm_adv=False)
    )
    assert stats["value_loss"] == 0.0
    assert torch.equal(policy.critic.weight, before)


# --- defaults through the one settings chain --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "group", "norm_adv", "agg"),
    [
        ("gae", 1, True, "token"),
        ("grpo", 8, False, "sequence"),
        ("dr_grpo", 8, False, "constant"),
        ("rloo", 4, False, "token"),
        ("reinforce_pp", 1, False, "token"),
    ],
)
def test_an_estimator_brings_its_documented_defaults(
    name: str, group: int, norm_adv: bool, agg: str
) -> None:
    cfg = resolve({"advantage": name})
    assert (cfg.group_size, cfg.norm_adv, cfg.loss_agg, cfg.kl_in) == (group, norm_adv, agg, None)
    with_ref = resolve({"advantage": name, "kl_coef": 0.1})
    assert with_ref.kl_in == ("loss" if name in ("grpo", "dr_grpo") else "reward")


def test_flags_and_files_override_the_estimator_defaults(tmp_path: Path) -> None:
    cfg = resolve({"advantage": "grpo", "group_size": 4, "norm_adv": True})
    assert (cfg.group_size, cfg.norm_adv, cfg.loss_agg) == (4, True, "sequence")
    path = tmp_path / "c.yaml"
    path.write_text("advantage: rloo\ngroup_size: 2\n")
    cfg = resolve({}, path)
    assert (cfg.advantage, cfg.group_size) == ("rloo", 2)
    assert resolve({"advantage": "group"}).advantage == "grpo"  # the old name


def test_group_size_one_for_a_group_estimator_is_refused() -> None:
    with pytest.raises(UsageError, match="--group-size 1"):
        resolve({"advantage": "rloo", "group_size": 1})


# --- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--advantage", "grpo", "--group-size", "1"], "--group-size 1"),
        (["--kl-in", "loss"], "--kl-in loss"),
        (["--env", "CartPole-v1", "--advantage", "grpo"], "--advantage is for text QA"),
        (["--env", "CartPole-v1", "--group-size", "4"], "--group-size is for text QA"),
        (["--advantage", "ppo"], "--advantage must be one of"),
        (["--loss-agg", "mean"], "--loss-agg must be one of"),
    ],
)
def test_bad_estimator_input_is_one_line_exit_2(
    tmp_path: Path, args: list[str], words: str
) -> None:
    line = one_error_line(invoke("train", *args, "--run-dir", str(tmp_path / "r")), 2)
    assert words in line
    assert not (tmp_path / "r").exists()


def read_metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / METRICS).read_text().splitlines()]


TRL_KEYS = ("reward", "reward_std", "kl", "entropy", "clip_ratio", "completions/mean_length")


@pytest.mark.parametrize("name", ["grpo", "rloo", "dr_grpo", "reinforce_pp"])
def test_each_estimator_alone_solves_the_builtin_set(tmp_path: Path, name: str) -> None:
    run = tmp_path / name
    result = invoke("train", "--advantage", name, "--seed", "3", "--run-dir", str(run), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["stop_reason"] == "solved" and doc["final_accuracy"] == 1.0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["advantage"] == name
    rows = read_metrics(run)
    g = cfg["group_size"]
    assert doc["episodes"] == len(rows) * 64 and 64 % g == 0
    for row in rows:
        assert row["value_loss"] == 0.0 and row["explained_variance"] is None  # no critic
        for key in ("reward", "reward_std", "entropy", "clip_ratio", "completions/mean_length"):
            assert isinstance(row[key], float), key
        assert ("frac_reward_zero_std" in row) == (g > 1)


def test_grouped_batches_hold_whole_groups(tmp_path: Path) -> None:
    """Every question of an iteration is asked exactly --group-size times (traced batch)."""
    run = tmp_path / "g"
    result = invoke(
        "train", "--advantage", "rloo", "--group-size", "4", "--num-episodes", "18",
        "--iterations", "1", "--run-dir", str(run), "--json", "--trace",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["episodes"] == 20  # 18 rounded up to whole groups of 4
    row = read_metrics(run)[0]
    assert 0.0 <= row["frac_reward_zero_std"] <= 1.0


def test_kl_in_loss_keeps_the_reward_and_logs_the_term(tmp_path: Path) -> None:
    sft_run = tmp_path / "sft"
    assert invoke("sft", "--run-dir", str(sft_run), "-q").exit_code == 0
    args = ["--init-from", str(sft_run), "--iterations", "3", "--num-episodes", "32", "-q"]
    loss_run, reward_run = tmp_path / "loss", tmp_path / "reward"
    result = invoke(
        "train", *args, "--advantage", "grpo", "--kl-coef", "0.5", "--run-dir", str(loss_run)
    )
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load((loss_run / "config.yaml").read_text())["kl_in"] == "loss"
    for row in read_metrics(loss_run):
        assert row["kl_penalty"] == 0.0 and row["mean_reward"] == pytest.approx(row["reward"])
        assert row["kl_loss"] >= 0.0 and "kl" in row
    result = invoke(
        "train", *args, "--kl-in", "reward", "--kl-coef", "0.5", "--run-dir", str(reward_run)
    )
    assert result.exit_code == 0, result.stderr
    rows = read_metrics(reward_run)
    assert all("kl_loss" not in r for r in rows)
    assert any(r["kl_penalty"] > 0 for r in rows)


def test_trl_names_reach_tensorboard_under_train() -> None:
    from ppo_cli.core.tensorboard import scalars_from_record

    rec = {"steps": 10, "reward": 2.0, "reward_std": 1.0, "frac_reward_zero_std": 0.25}
    rec |= {"kl": 0.1, "clip_ratio": 0.2, "completions/mean_length": 2.5}
    tags = scalars_from_record(rec)
    for key in ("reward", "reward_std", "frac_reward_zero_std", "kl", "clip_ratio"):
        assert tags[f"train/{key}"] == rec[key]
    assert tags["train/completions/mean_length"] == 2.5


def test_explain_advantage_fits_80_columns_and_matches_the_estimators(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert invoke("train", "--iterations", "1", "--run-dir", str(run), "-q").exit_code == 0
    result = runner.invoke(
        app, ["explain-advantage", "--run", str(run), "--group-size", "4"], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    for word in ("grpo", "dr_grpo", "rloo", "rf++", "gae", "R - mean(others)"):
        assert word in result.stdout
    doc = json.loads(invoke("explain-advantage", "--run", str(run), "--json").stdout)
    rows = doc["rows"]
    assert len(rows) == doc["groups"] * doc["group_size"] == 12
    r = torch.tensor([row["reward"] for row in rows])
    g = torch.tensor([row["group"] for row in rows]) - 1
    assert [x["adv_rloo"] for x in rows] == pytest.approx(estimators.rloo(r, g).tolist(), abs=1e-4)
    assert [x["adv_grpo"] for x in rows] == pytest.approx(estimators.grpo(r, g).tolist(), abs=1e-3)
    for row in rows:  # each number from the ones shown beside it
        assert row["adv_dr_grpo"] == pytest.approx(row["reward"] - row["group_mean"], abs=1e-4)
        assert row["adv_rloo"] == pytest.approx(row["reward"] - row["loo_mean"], abs=1e-4)


def test_explain_advantage_without_a_run_trains_a_short_one_and_refuses_groups_of_one() -> None:
    result = invoke("explain-advantage", "--json", "--questions", "2")
    assert result.exit_code == 0 and result.stderr == ""
    assert len(json.loads(result.stdout)["rows"]) == 8
    line = one_error_line(invoke("explain-advantage", "--group-size", "1"), 2)
    assert "--group-size" in line


def _without_wall(doc: dict[str, Any]) -> dict[str, Any]:
    doc = {k: v for k, v in doc.items() if k not in ("wall_seconds", "figures")}
    doc["estimators"] = {
        k: {kk: vv for kk, vv in e.items() if kk != "wall"} for k, e in doc["estimators"].items()
    }
    return doc


def test_compare_reports_iqm_and_cis_and_repeats_itself(tmp_path: Path) -> None:
    args = ["compare", "--estimators", "gae,grpo", "--seeds", "2", "--iterations", "2", "--json"]
    first = invoke(*args, "--out", str(tmp_path / "a"))
    assert first.exit_code == 0, first.stderr
    assert first.stderr == ""
    doc = json.loads(first.stdout)
    assert doc["completions_per_run"] == 128
    for name in ("gae", "grpo"):
        e = doc["estimators"][name]
        lo, hi = e["final_accuracy"]["ci95"]
        assert lo <= e["final_accuracy"]["iqm"] <= hi
        assert e["curve"]["completions"] == [64, 128]  # the same x axis for every estimator
        assert e["wall"]["peak_rss_mb"] > 0
    assert (tmp_path / "a" / "accuracy_vs_completions.png").stat().st_size > 0
    assert (tmp_path / "a" / "cost.png").stat().st_size > 0
    second = json.loads(invoke(*args, "--no-figures").stdout)
    assert _without_wall(second) == _without_wall(doc)
    text = runner.invoke(app, [*args[:-1], "--no-figures"], env={"COLUMNS": "80"})
    assert text.exit_code == 0 and "IQM over seeds" in text.stdout
    assert max(len(line) for line in text.stdout.splitlines()) <= 80


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--estimators", "gae,ppo"], "unknown estimator 'ppo'"),
        (["--num-episodes", "60"], "not a multiple"),
        (["--seeds", "0"], "at least 1"),
    ],
)
def test_compare_bad_input_is_one_line_exit_2(args: list[str], words: str) -> None:
    assert words in one_error_line(invoke("compare", *args, "--no-figures"), 2)


def test_trace_shows_each_group_with_its_estimator_advantages(tmp_path: Path) -> None:
    args = ["train", "--advantage", "rloo", "--iterations", "1", "--json", "--trace"]
    result = invoke(*args, "--run-dir", str(tmp_path / "r"))
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)["traces"][0]["completion_groups"]
    assert info["estimator"] == "rloo" and len(info["groups"]) == 2
    for group in info["groups"]:
        rewards = torch.tensor([c["reward"] for c in group["completions"]])
        assert len(rewards) == 4
        loo = (rewards.sum() - rewards) / 3
        got = [c["advantage"] for c in group["completions"]]
        assert got == pytest.approx((rewards - loo).tolist(), abs=1e-4)
    shown = runner.invoke(app, [*args[:-2], "--trace", "--run-dir", str(tmp_path / "s"), "-q"])
    assert "completions per question, advantage by rloo" in shown.stderr


def test_rows_added_after_sampling_join_their_question_group() -> None:
    groups = torch.tensor([0, 0, 1, 1])
    questions = torch.tensor([7, 7, 3, 3, 3, 9])  # a replayed 3, then a 9 no group asked
    assert estimators.extend_groups(groups, questions).tolist() == [0, 0, 1, 1, 1, 2]
    assert estimators.extend_groups(groups, questions[:4]).tolist() == [0, 0, 1, 1]


def test_a_sweep_over_estimators_gives_each_its_own_settings(tmp_path: Path) -> None:
    args = ["sweep", "--search", "advantage=gae,rloo", "--seeds", "1", "--iterations", "1"]
    result = invoke(*args, "--num-episodes", "16", "--out", str(tmp_path / "s"), "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert {c["state"] for c in doc["configurations"]} == {"complete"}
    seen = {}
    for path in (tmp_path / "s").rglob("config.yaml"):
        cfg = yaml.safe_load(path.read_text())
        seen[cfg["advantage"]] = (cfg["group_size"], cfg["norm_adv"])
    assert seen == {"gae": (1, True), "rloo": (4, False)}


def test_plot_of_a_grouped_run_shows_the_all_equal_groups(tmp_path: Path) -> None:
    run = tmp_path / "r"
    args = ["train", "--advantage", "grpo", "--iterations", "2", "--no-early-stop"]
    assert invoke(*args, "--run-dir", str(run), "-q").exit_code == 0
    assert "frac_reward_zero_std" in read_metrics(run)[0]
    from ppo_cli.plotting import text_run_figure

    fig = text_run_figure(run, read_metrics(run))
    labels = [a.get_ylabel() for a in fig.axes]
    assert any("frac_reward_zero_std" in label for label in labels)
    result = invoke("plot", "--run", str(run), "--out", str(tmp_path / "f.png"))
    assert result.exit_code == 0 and (tmp_path / "f.png").stat().st_size > 0


def test_compare_never_writes_over_a_users_file_and_says_so_before_training(
    tmp_path: Path,
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "cost.png").write_text("my own picture")
    res = subprocess.run(
        [sys.executable, "-m", "ppo_cli", "compare", "--seeds", "1", "--estimators", "gae",
         "--iterations", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "ppoqa did not draw it" in res.stderr
    assert "compare:" not in res.stderr  # refused before any seed trained
    assert (out / "cost.png").read_text() == "my own picture"
