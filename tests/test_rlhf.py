"""RLHF mechanics (issue 13): SFT warm start, KL to a frozen reference, user reward functions."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from ppo_cli.cli import app
from ppo_cli.config import Config
from ppo_cli.core.optim import PlainAdam
from ppo_cli.core.rundir import METRICS, load_checkpoint
from ppo_cli.core.trainer import Callbacks, train
from ppo_cli.errors import ConfigError, TrainingError
from ppo_cli.textqa.data import END_ID, PAD_ID, Vocabulary, load_dataset
from ppo_cli.textqa.env import QATask
from ppo_cli.textqa.kl import KLController, exact_kl, kl_estimate, kl_k1, kl_k3, per_token_rewards
from ppo_cli.textqa.policies import build_policy
from ppo_cli.textqa.reward_fn import RECORD, load_reward_fn
from ppo_cli.textqa.rlhf import Reference
from ppo_cli.textqa.sft import sft, teacher_batch

from .conftest import EXAMPLES

runner = CliRunner()
PARIS = f"{EXAMPLES / 'proxy_paris.py'}:is_paris"
SMALL = ["--num-episodes", "16", "--no-early-stop", "-q"]


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PPOQA_DEBUG", raising=False)


def invoke(*args: str):
    return runner.invoke(app, list(args))


def one_error_line(result: Any, code: int = 1) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ppoqa: error: ") and "(hint: " in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def metrics(run: Path) -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in (run / METRICS).read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("sft") / "run"
    result = invoke("sft", "--run-dir", str(run), "-q")
    assert result.exit_code == 0, result.stderr
    return run


# --- the KL term by hand ---------------------------------------------------------------------

P = torch.tensor([0.5, 0.3, 0.2])
Q = torch.tensor([0.2, 0.2, 0.6])
KL_PQ = sum(p * math.log(p / q) for p, q in zip(P.tolist(), Q.tolist(), strict=True))


def test_closed_form_kl_of_a_tiny_distribution() -> None:
    assert pytest.approx(0.5 * math.log(2.5) + 0.3 * math.log(1.5) + 0.2 * math.log(1 / 3)) == KL_PQ
    assert float(exact_kl(P.log(), Q.log())) == pytest.approx(KL_PQ, abs=1e-6)


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_estimators_average_to_the_closed_form(estimator: str) -> None:
    """Weighting each outcome by its probability under pi is the exact expectation."""
    per_outcome = kl_estimate(P.log(), Q.log(), estimator)
    assert float((P * per_outcome).sum()) == pytest.approx(KL_PQ, abs=1e-6)
    # and a Monte-Carlo average of sampled tokens converges to it
    gen = torch.Generator().manual_seed(0)
    x = torch.multinomial(P, 200_000, replacement=True, generator=gen)
    sample = kl_estimate(P.log()[x], Q.log()[x], estimator).mean()
    assert float(sample) == pytest.approx(KL_PQ, abs=0.01)


def test_k1_and_k3_by_hand() -> None:
    lp, lq = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.2)])
    assert float(kl_k1(lp, lq)) == pytest.approx(math.log(0.5 / 0.2))
    r = 0.2 / 0.5
    assert float(kl_k3(lp, lq)) == pytest.approx((r - 1) - math.log(r))
    # k1 can be negative for one sample (p < p_ref); k3 never is
    assert float(kl_k1(lq, lp)) < 0 < float(kl_k3(lq, lp))
    assert float(kl_k3(lp, lp)) == 0.0


def test_adaptive_controller_follows_ziegler() -> None:
    ctl = KLController(0.2, target=0.1, horizon=100)
    assert ctl.update(0.15, 10) == pytest.approx(0.2 * (1 + 0.2 * 10 / 100))  # error clipped
    ctl = KLController(0.2, target=0.1, horizon=100)
    assert ctl.update(0.11, 10) == pytest.approx(0.2 * (1 + 0.1 * 10 / 100))
    ctl = KLController(0.2, target=0.1, horizon=100)
    assert ctl.update(0.0, 50) == pytest.approx(0.2 * (1 - 0.2 * 0.5))
    fixed = KLController(0.3)
    assert fixed.update(5.0, 1000) == 0.3 and not fixed.adaptive


def test_per_token_rewards_by_hand() -> None:
    score = torch.tensor([[-0.1, 1.0, 0.0]])
    kl = torch.tensor([[0.5, 0.2, 9.0]])
    mask = torch.tensor([[True, True, False]])
    assert per_token_rewards(score, kl, 2.0, mask)[0].tolist() == pytest.approx([-1.1, 0.6, 0.0])


# --- SFT ---------------------------------------------------------------------------------------


def test_teacher_batch_has_the_rollout_layout() -> None:
    ds = load_dataset(None)
    task = QATask(ds, Vocabulary.from_dataset(ds))
    tb = teacher_batch(task)
    p = task.prompt_len
    i = 3  # Who wrote Romeo and Juliet? -> Shakespeare
    gold = task.vocab.encode(["Shakespeare"])[0][0]
    assert tb.obs.shape == (5, p + task.max_steps - 1)
    assert tb.actions[i, :2].tolist() == [gold, END_ID]
    assert tb.mask[i].tolist() == [True, True] + [False] * (task.max_steps - 2)
    assert tb.obs[i, p] == gold and (tb.obs[i, p + 1 :] == PAD_ID).all()


def test_plain_adam_matches_torch_adam() -> None:
    torch.manual_seed(0)
    a = torch.nn.Linear(4, 3)
    b = torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    ours = PlainAdam(a.parameters(), lr=0.01, eps=1e-5)
    theirs = torch.optim.Adam(b.parameters(), lr=0.01, eps=1e-5)
    for step in range(5):
        x = torch.randn(8, 4)
        for net, opt in ((a, ours), (b, theirs)):
            opt.zero_grad()
            net(x).pow(2).sum().backward()
            opt.step()
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.allclose(pa, pb, atol=1e-6), step


def test_sft_builtin_reaches_100_percent_and_is_an_ordinary_run(sft_run: Path) -> None:
    for name in ("config.yaml", "dataset.yaml", "vocab.json", "metrics.jsonl", "checkpoint.pt"):
        assert (sft_run / name).is_file(), name
    ckpt = load_checkpoint(sft_run)
    assert ckpt["kind"] == "sft"
    rows = metrics(sft_run)
    assert rows[-1]["eval_accuracy"] == 1.0 and rows[-1]["loss"] < rows[0]["loss"]
    result = invoke("eval", "--run", str(sft_run), "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["accuracy"] == 1.0
    result = invoke("ask", "--run", str(sft_run), "What is the largest planet?")
    assert result.exit_code == 0 and result.stdout.strip() == "Jupiter"
    result = invoke("plot", "--run", str(sft_run), "--out", str(sft_run / "f.png"))
    assert result.exit_code == 0 and (sft_run / "f.png").stat().st_size > 0
    result = invoke("explain-gae", "--run", str(sft_run), "--json")
    assert result.exit_code == 0, result.stderr
    # never over an existing run; PPO cannot resume an SFT run, it starts from one
    line = one_error_line(invoke("sft", "--run-dir", str(sft_run)))
    assert "already holds a run" in line and "another --run-dir" in line
    line = one_error_line(invoke("train", "--resume", str(sft_run)))
    assert "--init-from" in line


def test_sft_transformer(tmp_path: Path) -> None:
    cfg = Config(policy="transformer", learning_rate=3e-3)
    result = sft(cfg, epochs=80, run_dir=tmp_path / "t")
    assert result.final_accuracy == 1.0


def test_sft_json_is_one_document_and_stderr_stays_empty(tmp_path: Path) -> None:
    result = invoke("sft", "--epochs", "3", "--run-dir", str(tmp_path / "j"), "--json")
    assert result.exit_code == 0 and result.stderr == ""
    doc = json.loads(result.stdout)
    assert doc["kind"] == "sft" and doc["epochs"] == 3 and len(doc["final_results"]) == 5


def test_sft_bad_flags_are_usage_errors(tmp_path: Path) -> None:
    one_error_line(invoke("sft", "--epochs", "0", "--run-dir", str(tmp_path / "x")), 2)
    one_error_line(invoke("sft", "--policy", "mlp", "--run-dir", str(tmp_path / "x")), 2)
    assert not (tmp_path / "x").exists()


# --- --init-from and the reference ------------------------------------------------------------


def test_init_from_another_vocabulary_is_refused(sft_run: Path, tmp_path: Path) -> None:
    line = one_error_line(
        invoke(
            "train",
            "--init-from",
            str(sft_run),
            "--dataset",
            str(EXAMPLES / "capitals.yaml"),
            "--run-dir",
            str(tmp_path / "r"),
            *SMALL,
        )
    )
    assert "vocabulary" in line and str(sft_run) in line
    assert not (tmp_path / "r").exists()


def test_init_from_missing_gym_or_other_network_is_refused(sft_run: Path, tmp_path: Path) -> None:
    line = one_error_line(invoke("train", "--init-from", str(tmp_path / "nope"), *SMALL))
    assert "not found" in line
    gym = tmp_path / "gym"
    gym.mkdir()
    (gym / "config.yaml").write_text("env: CartPole-v1\n")
    line = one_error_line(invoke("train", "--init-from", str(gym), *SMALL))
    assert "CartPole-v1" in line
    line = one_error_line(
        invoke("train", "--init-from", str(sft_run), "--policy", "transformer", *SMALL)
    )
    assert "network" in line and "--policy" in line
    one_error_line(invoke("train", "--init-from", str(sft_run), "--kl-coef", "-1", *SMALL), 2)
    one_error_line(invoke("train", "--kl-estimator", "k2", *SMALL), 2)


@pytest.mark.parametrize(
    "flags",
    [["--kl-coef", "0.5"], ["--reward-fn", PARIS], ["--init-from", "x"]],
)
def test_rlhf_flags_are_refused_for_gymnasium(tmp_path: Path, flags: list[str]) -> None:
    run = tmp_path / "g"
    args = ["train", "--env", "CartPole-v1", "--timesteps", "256", "--run-dir", str(run), "-q"]
    line = one_error_line(invoke(*args, *flags), 2)  # a flag that does not apply: usage
    assert f"{flags[0]} is for text QA" in line
    assert not run.exists()


def test_reference_is_really_frozen() -> None:
    torch.manual_seed(0)
    policy = build_policy({"kind": "lstm", "vocab_size": 10, "hidden_size": 8})
    ref = Reference(policy)
    before = {k: v.clone() for k, v in ref.state_dict().items()}
    assert not any(p.requires_grad for p in ref.policy.parameters())
    opt = torch.optim.SGD(policy.parameters(), lr=1.0)
    obs = torch.randint(4, 10, (3, 5))
    logits, _ = policy.logits_values(obs, None)
    logits.sum().backward()
    opt.step()
    assert any(not torch.equal(p, before[k]) for k, p in policy.state_dict().items())
    for k, v in ref.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_kl_run_keeps_the_init_weights_as_reference(sft_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "kl"
    result = invoke(
        "train",
        "--init-from",
        str(sft_run),
        "--kl-coef",
        "0.5",
        "--reward-fn",
        PARIS,
        "--iterations",
        "3",
        "--run-dir",
        str(run),
        "--json",
        "--trace-iterations",
        "2",
        *SMALL,
    )
    assert result.exit_code == 0, result.stderr
    init = load_checkpoint(sft_run)["policy"]
    ckpt = load_checkpoint(run)
    for key, tensor in init.items():
        assert torch.equal(ckpt["reference"][key], tensor), key
    assert any(not torch.equal(ckpt["policy"][k], init[k]) for k in init)
    assert ckpt["init_from"]["kind"] == "sft"
    rows = metrics(run)
    for row in rows:
        assert {"kl", "score", "kl_coef", "kl_penalty"} <= set(row) and row["kl_coef"] == 0.5
    # the first rollout is sampled by the reference's own weights: its k1 is exactly zero
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    # the reward function's record
    record = json.loads((run / RECORD).read_text())
    assert record["name"] == "is_paris" and len(record["sha256"]) == 64
    assert Path(record["path"]) == (EXAMPLES / "proxy_paris.py").resolve()
    # the trace splits each step's reward into score and KL penalty
    (trace,) = json.loads(result.stdout)["traces"]
    step = trace["steps"][0]
    assert step["reward"] == pytest.approx(step["score"] + step["kl_penalty"], abs=2e-3)
    assert trace["kl_coef"] == 0.5
    # plot draws score, KL and gold accuracy for such a run
    from ppo_cli.plotting import run_figure

    titles = [ax.get_title() for ax in run_figure(run).axes]
    assert any("reference" in t for t in titles) and any("Gold accuracy" in t for t in titles)


def test_resume_of_an_adaptive_kl_run_gives_the_same_metrics(sft_run: Path, tmp_path: Path) -> None:
    base = {
        "init_from": str(sft_run),
        "kl_coef": 0.5,
        "kl_target": 0.01,
        "kl_horizon": 32,
        "kl_estimator": "k3",
        "reward_fn": PARIS,
        "num_episodes": 16,
        "target_accuracy": None,
        "save_every": 2,
    }
    full = tmp_path / "full"
    train(Config(**base, iterations=6), full, Callbacks())
    part = tmp_path / "part"
    train(Config(**base, iterations=4), part, Callbacks())
    from ppo_cli.core.session import resume_config

    train(resume_config(part, {"iterations": 6}), part, Callbacks(), resume=True)
    assert metrics(part) == metrics(full)
    coefs = [r["kl_coef"] for r in metrics(full)]
    assert len(set(coefs)) > 1  # the adaptive coefficient really moved


# --- --reward-fn -------------------------------------------------------------------------------


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rf.py"
    path.write_text(body)
    return path


def test_reward_fn_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_reward_fn(f"{tmp_path / 'missing.py'}:f")
    path = write(tmp_path, "def f(question, answer, target):\n    return 1.0\n")
    with pytest.raises(ConfigError, match="no function 'g'"):
        load_reward_fn(f"{path}:g")
    write(tmp_path, "def f(answer):\n    return 1.0\nx = 3\n")
    with pytest.raises(ConfigError, match="signature"):
        load_reward_fn(f"{path}:f")
    with pytest.raises(ConfigError, match="not a function"):
        load_reward_fn(f"{path}:x")
    with pytest.raises(ConfigError, match="no module"):
        load_reward_fn("no_such_module_xyz:f")
    with pytest.raises(ConfigError, match="FILE.py:NAME"):
        load_reward_fn("justaname")
    rf = load_reward_fn("math:hypot")  # a module function taking (*args) is fine
    assert rf.name == "hypot"


@pytest.mark.parametrize(
    "spec", ["{d}/missing.py:f", "{d}/rf.py:nope", "{d}/rf.py:two_args", "no_such_mod_q:f"]
)
def test_reward_fn_cli_errors_are_one_line(tmp_path: Path, spec: str) -> None:
    write(tmp_path, "def two_args(question, answer):\n    return 0.0\n")
    run = tmp_path / "r"
    line = one_error_line(
        invoke("train", "--reward-fn", spec.format(d=tmp_path), "--run-dir", str(run), *SMALL)
    )
    assert "--reward-fn" in line
    assert not run.exists()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("raise ValueError('boom')", ["raised ValueError", "boom"]),
        ("return 'yes'", ["'yes'", "not a number"]),
        ("return float('nan')", ["nan"]),
    ],
)
def test_reward_fn_failure_stops_with_one_line_and_the_run_resumes(
    tmp_path: Path, body: str, words: list[str]
) -> None:
    path = write(
        tmp_path,
        "import os\n\ndef score(question, answer, target):\n"
        "    if os.environ.get('PPOQA_TEST_BAD') == '1':\n"
        f"        {body}\n"
        "    return float(answer == target)\n",
    )
    run = tmp_path / "run"
    args = ["train", "--reward-fn", f"{path}:score", "--run-dir", str(run), "--save-every", "1"]
    ok = invoke(*args, "--iterations", "2", *SMALL)
    assert ok.exit_code == 0, ok.stderr
    import os

    os.environ["PPOQA_TEST_BAD"] = "1"
    try:
        line = one_error_line(invoke("train", "--resume", str(run), "--iterations", "4", "-q"))
    finally:
        del os.environ["PPOQA_TEST_BAD"]
    assert "reward function score" in line and "question" in line
    for w in words:
        assert w in line
    assert "checkpoint (iteration 2)" in line
    done = invoke("train", "--resume", str(run), "--iterations", "4", "-q")
    assert done.exit_code == 0, done.stderr
    assert [r["iteration"] for r in metrics(run)] == [1, 2, 3, 4]


def test_reward_fn_replaces_the_score(tmp_path: Path) -> None:
    rf = load_reward_fn(PARIS)
    assert rf("q?", "Paris", "x") == 1.0 and rf("q?", "Rome", "Paris") == 0.0
    path = write(tmp_path, "def f(q, a, t):\n    return None\n")
    with pytest.raises(TrainingError, match="None"):
        load_reward_fn(f"{path}:f")("q", "a", "t")
