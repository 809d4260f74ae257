"""`ppoqa train --trace`: episodes, advantages and clipping from the real update."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from ppo_cli.cli import app
from ppo_cli.config import Config
from ppo_cli.core.gae import compute_gae
from ppo_cli.core.ppo import Batch, UpdateSettings, ppo_update
from ppo_cli.core.trace import TraceSelection, parse_trace_iterations, start_trace
from ppo_cli.core.trainer import Callbacks, train
from ppo_cli.errors import UsageError
from ppo_cli.gym.policy import MLPActorCritic
from ppo_cli.gym.trace import batch_trace

runner = CliRunner()
TINY = ["--iterations", "2", "--num-episodes", "16", "--no-early-stop", "--eval-every", "2"]


def test_parse_trace_iterations() -> None:
    default = parse_trace_iterations(None)
    assert [i for i in range(1, 11) if default.wants(i, 10)] == [1, 10]
    sel = parse_trace_iterations("3, 5,last")
    assert [i for i in range(1, 11) if sel.wants(i, 10)] == [3, 5, 10]
    assert all(parse_trace_iterations("all").wants(i, 4) for i in range(1, 5))
    for bad in ("", "0", "x", "1,-2", "1.5"):
        with pytest.raises(UsageError):
            parse_trace_iterations(bad)


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    run = tmp_path_factory.mktemp("traced")
    result = runner.invoke(
        app, ["train", *TINY, "--run-dir", str(run), "--trace-iterations", "1,2", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), run


def test_json_summary_carries_one_trace_per_chosen_iteration(traced) -> None:  # noqa: ANN001
    summary, _ = traced
    assert [t["iteration"] for t in summary["traces"]] == [1, 2]
    json.dumps(summary, allow_nan=False)


def test_episodes_and_advantages_tables(traced) -> None:  # noqa: ANN001
    summary, _ = traced
    trace = summary["traces"][0]
    assert trace["batch_episodes"] == 16 + trace["replayed_episodes"]  # sampled + remembered
    assert 1 <= len(trace["episodes"]) <= 3
    for ep in trace["episodes"]:
        assert ep["question"].endswith("?")
        assert len(ep["tokens"]) == len(ep["rewards"])
        assert ep["total"] == pytest.approx(sum(ep["rewards"]), abs=1e-4)
    steps = trace["steps"]
    assert len(steps) == sum(len(ep["tokens"]) for ep in trace["episodes"])
    for row in steps:
        assert row["return"] == pytest.approx(row["advantage"] + row["value"], abs=1e-4)
    # A_t = delta_t + gamma * lambda * A_{t+1} inside each episode (defaults 0.99, 0.95)
    for a, b in zip(steps, steps[1:], strict=False):
        if a["episode"] == b["episode"]:
            assert a["advantage"] == pytest.approx(
                a["delta"] + 0.99 * 0.95 * b["advantage"], abs=1e-4
            )
    norm = trace["normalization"]
    for row in steps:
        expected = (row["advantage"] - norm["mean"]) / (norm["std"] + 1e-8)
        assert row["normalized"] == pytest.approx(expected, abs=1e-3)


def test_clipping_rows_are_consistent(traced) -> None:  # noqa: ANN001
    summary, _ = traced
    clip = summary["traces"][0]["clipping"]
    eps = clip["clip_coef"]
    assert clip["rows"] and len(clip["rows"]) <= 4 * 4  # 4 epochs, at most 4 rows each
    for row in clip["rows"]:
        assert row["ratio"] == pytest.approx(
            math.exp(row["new_logprob"] - row["old_logprob"]), rel=1e-3
        )
        assert row["is_clipped"] == (abs(row["ratio"] - 1) > eps)
        assert row["unclipped"] == pytest.approx(row["ratio"] * row["advantage"], abs=1e-4)
        assert row["objective"] == pytest.approx(min(row["unclipped"], row["clipped"]), abs=1e-6)
    first = [r for r in clip["rows"] if r["epoch"] == 1 and r["minibatch"] == 1]
    assert all(r["ratio"] == pytest.approx(1.0, abs=1e-5) for r in first)  # policy not moved yet


def test_clipping_table_shows_answer_words_whole(traced) -> None:  # noqa: ANN001
    from rich.console import Console

    from ppo_cli.render.teach import trace_clip_table

    record = traced[0]["traces"][0]
    row = {**record["clipping"]["rows"][0], "action": "Shakespeare"}
    record = {**record, "clipping": {**record["clipping"], "rows": [row]}}
    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(trace_clip_table(record))
    assert "Shakespeare" in out.getvalue()  # an ordinary answer word is never cut to "Shakespe…"


def test_per_epoch_losses_are_the_updates_own(traced) -> None:  # noqa: ANN001
    summary, run = traced
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for trace, record in zip(summary["traces"], metrics, strict=True):
        assert [e["epoch"] for e in trace["epochs"]] == [1, 2, 3, 4]
        assert [e["loss"] for e in trace["epochs"]] == pytest.approx(
            record["epoch_losses"], abs=1e-5
        )
        assert trace["epochs"][-1]["approx_kl"] == pytest.approx(record["approx_kl"], abs=1e-6)
        assert trace["epochs"][-1]["clipfrac"] == pytest.approx(record["clipfrac"], abs=1e-6)


def test_tracing_does_not_change_training(traced, tmp_path: Path) -> None:  # noqa: ANN001
    _, run = traced
    result = runner.invoke(app, ["train", *TINY, "--run-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0

    def strip(p: Path) -> list[dict]:
        rows = [json.loads(line) for line in (p / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]

    assert strip(tmp_path) == strip(run)


def test_trace_tables_go_to_stderr(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["train", *TINY, "--run-dir", str(tmp_path), "--trace", "--quiet", "--show-every", "0"],
    )
    assert result.exit_code == 0, result.stderr
    for words in ("trace of iteration 1", "trace of iteration 2", "episodes", "advantages",
                  "clipping", "per epoch", "approx_kl", "clipfrac"):  # fmt: skip
        assert words in result.stderr
    assert "trace of iteration" not in result.stdout


def test_bad_trace_iterations_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", *TINY, "--trace-iterations", "soon", "--quiet"])
    assert result.exit_code == 2 and "--trace-iterations" in result.stderr


class Collect(Callbacks):
    def __init__(self, selection: TraceSelection) -> None:
        self.selection = selection
        self.records: list[dict[str, Any]] = []

    def wants_trace(self, iteration: int, total: int) -> bool:
        return self.selection.wants(iteration, total)

    def on_trace(self, record: dict[str, Any]) -> None:
        self.records.append(record)


def test_last_is_traced_when_training_stops_early(tmp_path: Path) -> None:
    cb = Collect(TraceSelection(first=False, last=True))
    # target accuracy 0 is reached at the first evaluation: iteration 1 is the last one
    cfg = Config(iterations=5, num_episodes=8, target_accuracy=0.0)
    result = train(cfg, tmp_path, cb)
    assert result.iterations == 1
    assert [r["iteration"] for r in cb.records] == [1]


def test_generic_batch_trace_for_flat_step_batches() -> None:
    """What a gymnasium trainer passes: the valid steps flattened time-major, and
    rewards/dones/deltas/valid as [num_steps, num_envs]."""
    torch.manual_seed(0)
    num_steps, num_envs, obs_dim = 6, 2, 4
    policy = MLPActorCritic(obs_dim, 2, 16)
    obs = torch.randn(num_steps, num_envs, obs_dim)  # [T, E, obs]
    with torch.no_grad():
        actions, logprobs, values = policy.act(obs.reshape(-1, obs_dim), greedy=False)
    actions, logprobs, values = (
        x.reshape(num_steps, num_envs) for x in (actions, logprobs, values)
    )
    rewards = torch.arange(num_steps * num_envs, dtype=torch.float32).reshape(num_steps, num_envs)
    dones = torch.zeros(num_steps, num_envs, dtype=torch.bool)
    dones[2, 0] = dones[4, 1] = True
    valid = torch.ones(num_steps, num_envs, dtype=torch.bool)
    valid[3, 0] = False  # e.g. a NEXT_STEP autoreset step: not a transition
    gae = compute_gae(rewards, values, dones, 0.5, 0.99, 0.95)
    batch = Batch(
        obs=obs[valid],
        actions=actions[valid],
        old_logprobs=logprobs[valid],
        old_values=values[valid],
        advantages=gae.advantages[valid],
        returns=gae.returns[valid],
        mask=torch.ones(int(valid.sum()), dtype=torch.bool),
    )

    class Wants(Callbacks):
        def wants_trace(self, iteration: int, total: int) -> bool:
            return iteration == 3

    assert start_trace(Wants(), 2, 10, 0.2) is None
    rec = start_trace(Wants(), 3, 10, 0.2)
    assert rec is not None
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    ppo_update(
        policy,
        opt,
        batch,
        UpdateSettings(update_epochs=2, num_minibatches=2, vf_coef=0.5, ent_coef=0.01),
        rec.on_minibatch,
    )
    trace = batch_trace(3, batch, rewards, dones, gae.deltas, rec, valid=valid)
    assert trace["kind"] == "gym" and trace["iteration"] == 3
    steps = trace["steps"]
    assert [s["t"] for s in steps] == [0, 1, 2, 4, 5]  # env 0, the invalid step left out
    assert [s["reward"] for s in steps] == [0.0, 2.0, 4.0, 8.0, 10.0]  # rewards[t, 0]
    assert steps[3]["advantage"] == pytest.approx(float(gae.advantages[4, 0]), abs=1e-5)
    label = steps[0]["label"]  # the observation, summarized
    assert label.startswith("[") and label.count(",") == obs_dim - 1 and "…" not in label
    assert steps[2]["done"] is True
    assert [ep["episode"] for ep in trace["episodes"]] == ["env 0, steps 0-2+", "env 1, steps 0-4+"]
    assert trace["episodes"][1]["total"] == sum(float(rewards[t, 1]) for t in range(5))
    assert len(trace["epochs"]) == 2 and trace["clipping"]["rows"]
    json.dumps(trace, allow_nan=False)

    from rich.console import Console

    from ppo_cli.render.teach import trace_view

    console = Console(width=160, record=True, file=io.StringIO())
    console.print(trace_view(trace))
    text = console.export_text()
    assert "first observation" in text and "clipping" in text and "per epoch" in text
