"""`ppoqa explain-gae` and `ppoqa explain-clip`: the seeds' worked numbers, hand-computed cases,
and input that must fail cleanly (exit 2, one line)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ppo_cli.cli import app
from ppo_cli.cli.explain import done_flags, gae_request, numbers
from ppo_cli.config import Config
from ppo_cli.errors import PpoqaError
from ppo_cli.teach.explain import GAERequest, explain_gae, gae_request_from_json

runner = CliRunner()


def run_json(args: list[str], stdin: str | None = None) -> dict:
    result = runner.invoke(app, [*args, "--json"], input=stdin)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


def r2(xs: list[float]) -> list[float]:
    return [round(x, 2) + 0.0 for x in xs]


# ---------------------------------------------------------------- the seeds' numbers


def test_default_is_the_seeds_correct_answer_walkthrough() -> None:
    doc = run_json(["explain-gae"])
    assert doc["rewards"] == [-0.1, 10.0] and doc["values"] == [8.2, 9.8]
    assert r2(doc["deltas"]) == [1.40, 0.20]
    assert r2(doc["advantages"]) == [1.59, 0.20]
    assert r2(doc["returns"]) == [9.79, 10.00]


def test_wrong_answer_walkthrough() -> None:
    doc = run_json(
        ["explain-gae", "--rewards", "-0.1,-2.0", "--values", "8.2,5.1", "--dones", "0,1"]
    )
    assert r2(doc["deltas"]) == [-3.25, -7.10]
    assert r2(doc["advantages"]) == [-9.93, -7.10]
    assert r2(doc["returns"]) == [-1.73, -2.00]
    assert run_json(["explain-gae", "--example", "wrong"])["advantages"] == doc["advantages"]


def test_rows_walk_backward_and_show_the_carried_term() -> None:
    doc = run_json(["explain-gae"])
    assert [row["t"] for row in doc["rows"]] == [1, 0]
    first, second = doc["rows"]
    assert first["next_value"] == 0.0 and first["carried"] == 0.0  # terminal step
    # t=0: gamma*lam*A_1 = 0.99*0.95*0.2 = 0.1881 flows back
    assert second["carried"] == pytest.approx(0.1881, abs=1e-5)
    assert second["next_value"] == pytest.approx(9.8)


def test_normalization_uses_the_unbiased_std() -> None:
    doc = run_json(["explain-gae", "--rewards", "1,0,2", "--values", "0,0,0", "--gamma", "0"])
    adv = doc["advantages"]  # gamma = 0: A_t = r_t - V_t
    assert adv == [1.0, 0.0, 2.0]
    norm = doc["normalization"]
    assert norm["mean"] == pytest.approx(1.0)
    assert norm["std"] == pytest.approx(statistics.stdev(adv))  # N-1: 1.0, not 0.816
    assert "N-1" in norm["std_convention"]
    assert doc["normalized_advantages"] == pytest.approx([0.0, -1.0, 1.0], abs=1e-6)


# ---------------------------------------------------------------- hand-computed cases


def test_terminal_mid_rollout_and_bootstrapped_end() -> None:
    # Steps 0-1 are one episode (done at 1); step 2 starts another that is cut off, so V after
    # it is bootstrapped with --last-value 2.
    doc = run_json(
        [
            "explain-gae",
            "--rewards", "1,1,1",
            "--values", "0.5,0.6,0.7",
            "--dones", "0,1,0",
            "--last-value", "2",
        ]
    )  # fmt: skip
    g, lam = 0.99, 0.95
    d2 = 1 + g * 2 - 0.7  # 2.28: bootstrapped
    d1 = 1 + 0 - 0.6  # 0.4: done, nothing after it
    d0 = 1 + g * 0.6 - 0.5  # 1.094
    a2, a1 = d2, d1  # the episode boundary stops the sum
    a0 = d0 + g * lam * a1
    assert doc["deltas"] == pytest.approx([d0, d1, d2], abs=1e-5)
    assert doc["advantages"] == pytest.approx([a0, a1, a2], abs=1e-5)
    assert doc["returns"] == pytest.approx([a0 + 0.5, a1 + 0.6, a2 + 0.7], abs=1e-5)
    assert doc["next_values"] == pytest.approx([0.6, 0.0, 2.0])


def test_last_value_is_ignored_when_the_last_step_is_done() -> None:
    base = ["explain-gae", "--rewards", "1,2", "--values", "0,0", "--dones", "0,1"]
    assert run_json(base)["advantages"] == run_json([*base, "--last-value", "100"])["advantages"]


def test_lambda_one_gives_monte_carlo_advantages() -> None:
    doc = run_json(
        ["explain-gae", "--rewards", "1,1,1,1,10", "--values", "5,5.5,6,7,9",
         "--dones", "0,0,0,0,1", "--lam", "1", "--gamma", "0.9"]
    )  # fmt: skip
    rewards, values = [1, 1, 1, 1, 10], [5, 5.5, 6, 7, 9]
    expected = []
    for t in range(5):
        ret = sum(0.9**k * r for k, r in enumerate(rewards[t:]))
        expected.append(ret - values[t])
    assert doc["advantages"] == pytest.approx(expected, abs=1e-4)


def test_stdin_json_document() -> None:
    doc = run_json(
        ["explain-gae", "-"],
        stdin=json.dumps({"rewards": [-0.1, 10], "values": [8.2, 9.8], "dones": [0, 1]}),
    )
    assert r2(doc["advantages"]) == [1.59, 0.20]
    doc = run_json(
        ["explain-gae", "-", "--gamma", "0"],
        stdin='{"rewards": [1, 2], "values": [0.5, 0.5], "gamma": 0.5, "lam": 0.1}',
    )
    assert doc["gamma"] == 0.0 and doc["lam"] == 0.1  # the flag wins over the document
    assert doc["advantages"] == pytest.approx([0.5, 1.5])


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        (["--rewards", "1,2", "--values", "1"], None, "different lengths"),
        (["--rewards", "1,2", "--values", "1,2", "--dones", "0"], None, "different lengths"),
        (["--rewards", "1,x", "--values", "1,2"], None, "item 2"),
        (["--rewards", "1,nan", "--values", "1,2"], None, "finite"),
        (["--rewards", "1", "--values", "1", "--dones", "maybe"], None, "0/1"),
        (["--rewards", "1"], None, "--values is missing"),
        (["--gamma", "1.5"], None, "gamma"),
        (["--lam", "-0.1"], None, "lambda"),
        (["--gamma", "nan"], None, "gamma"),
        (["-"], "{not json", "not a JSON"),
        (["-"], '{"rewards": [1], "values": ["a"]}', "not a number"),
        (["-"], '{"rewards": [1], "values": [1], "extra": 1}', "unknown key"),
        (["-"], "[1, 2]", "JSON object"),
        (["-", "--rewards", "1"], "{}", "not both"),
        (["--example", "nope"], None, "unknown example"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], stdin: str | None, words: str) -> None:
    result = runner.invoke(app, ["explain-gae", *args], input=stdin)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppoqa: error:")
    assert words in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_input_with_json_is_an_error_object() -> None:
    result = runner.invoke(app, ["explain-gae", "--rewards", "1,2", "--values", "1", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "usage"


# ---------------------------------------------------------------- property tests


def _accepts_or_our_error(fn, *args) -> None:  # noqa: ANN001
    """Only a result or a PpoqaError may come out; a result must explain to finite JSON."""
    try:
        req = fn(*args)
    except (PpoqaError, typer.BadParameter):  # ours: a usage error from ppoqa or its typer parser
        return
    if isinstance(req, GAERequest):
        doc = explain_gae(req)
        json.dumps(doc, allow_nan=False)  # raises on NaN/inf
        assert len(doc["advantages"]) == len(req.rewards)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_parse_number_list_never_crashes(text: str) -> None:
    try:
        xs = numbers(text)
    except typer.BadParameter:
        return
    assert xs and all(math.isfinite(x) for x in xs)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30))
def test_parse_done_list_never_crashes(text: str) -> None:
    try:
        flags = done_flags(text)
    except typer.BadParameter:
        return
    assert all(isinstance(f, bool) for f in flags)
    assert len(flags) == text.strip().strip("[]").count(",") + 1


number_text = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=6).map(
        lambda xs: ",".join(repr(x) for x in xs)
    ),
    st.text(alphabet="0123456789.-,e x[]", max_size=20),
    st.none(),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    number_text,
    number_text,
    st.one_of(st.none(), st.text(alphabet="01tf,yesno ", max_size=12)),
    st.one_of(st.none(), st.floats()),
    st.one_of(st.none(), st.floats()),
    st.one_of(st.none(), st.floats()),
)
def test_option_parsing_fails_only_with_our_errors(rewards, values, dones, last, gamma, lam):  # noqa: ANN001
    def parsed(rewards, values, dones, *scalars):  # noqa: ANN001, ANN202 -- as typer would
        lists = [None if t is None else parse(t) for t, parse in
                 ((rewards, numbers), (values, numbers), (dones, done_flags))]  # fmt: skip
        return gae_request(*lists, *scalars)

    _accepts_or_our_error(parsed, rewards, values, dones, last, gamma, lam)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "rewards": json_values | st.lists(st.floats(), max_size=5),
        "values": json_values | st.lists(st.floats(), max_size=5),
        "dones": json_values | st.lists(st.integers(0, 1), max_size=5),
        "last_value": json_values,
        "gamma": json_values | st.floats(0, 1),
        "lam": json_values | st.floats(0, 1),
    },
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(documents, json_values))
def test_stdin_documents_fail_only_with_our_errors(doc) -> None:  # noqa: ANN001
    _accepts_or_our_error(gae_request_from_json, json.dumps(doc))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80))
def test_stdin_text_fails_only_with_our_errors(text: str) -> None:
    _accepts_or_our_error(gae_request_from_json, text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["--rewards", "--values", "--dones", "--gamma", "--lam",
                                 "--last-value", "1,2", "-0.5", "x", "1", "0,1", "nan", "-",
                                 "2"]), max_size=7))  # fmt: skip
def test_cli_exits_0_or_2_without_traceback(argv: list[str]) -> None:
    result = runner.invoke(app, ["explain-gae", "--json", *argv], input="{}")
    assert result.exit_code in (0, 2), result.output
    json.loads(result.stdout)  # exactly one JSON document: the result or the error


# ---------------------------------------------------------------- --run


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ppo_cli.core.trainer import train

    run = tmp_path_factory.mktemp("run")
    cfg = Config(iterations=2, num_episodes=16, target_accuracy=None, eval_every=2)
    train(cfg, run)
    return run


def test_run_explains_sampled_episodes_like_training(text_run: Path) -> None:
    doc = run_json(["explain-gae", "--run", str(text_run), "--episodes", "2", "--seed", "3"])
    assert doc["batch_episodes"] == 16 and len(doc["episodes"]) == 2
    for ep in doc["episodes"]:
        n = len(ep["tokens"])
        assert n == len(ep["rewards"]) == len(ep["advantages"]) == len(ep["normalized_advantages"])
        assert ep["dones"][-1] is True
        # the walkthrough (compute_gae on one episode) equals the batch path (to_batch)
        assert ep["advantages"] == pytest.approx(ep["batch_advantages"], abs=1e-5)
    again = run_json(["explain-gae", "--run", str(text_run), "--episodes", "2", "--seed", "3"])
    assert again == doc  # seeded


def test_run_text_view_and_conflicts(text_run: Path) -> None:
    result = runner.invoke(app, ["explain-gae", "--run", str(text_run), "--episodes", "1"])
    assert result.exit_code == 0, result.stderr
    assert "Episode 1" in result.stdout and "Normalized over the whole batch" in result.stdout
    bad = runner.invoke(app, ["explain-gae", "--run", str(text_run), "--rewards", "1"])
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["explain-gae", "--run", str(text_run / "nope")])
    assert missing.exit_code == 1 and "not found" in missing.stderr


def test_text_view_shows_formulas_and_table() -> None:
    result = runner.invoke(app, ["explain-gae"])
    assert result.exit_code == 0
    for words in ("δ_t = r_t", "A_t = δ_t", "1.402", "1.590", "9.790", "0.707", "N-1"):
        assert words in result.stdout


# ---------------------------------------------------------------- explain-clip


def test_clip_default_walks_the_seed_examples() -> None:
    doc = run_json(["explain-clip"])
    ex = {e["name"]: e for e in doc["examples"]}
    assert round(ex["inside-band"]["ratios"][0], 2) == 1.03
    assert ex["inside-band"]["rows"][0]["outside_band"] is False
    big = ex["large-step"]["rows"][0]
    assert round(big["ratio"], 2) == 2.0
    assert (round(big["unclipped"], 2), round(big["clipped"], 2)) == (10.0, 6.0)
    assert round(big["objective"], 2) == 6.0 and big["chosen"] == "clipped"
    demo = ex["three-actions"]
    assert r2(demo["ratios"]) == [1.65, 1.22, 0.61]
    # The seed's loss is -mean(min(r*A, clip(r)*A)) = -(1.2 - 0.6107 + 1.2131) / 3
    assert round(demo["policy_loss"], 2) == -0.60
    assert demo["objective"] == pytest.approx(-demo["policy_loss"])
    assert [r["chosen"] for r in demo["rows"]] == ["clipped", "unclipped", "unclipped"]


def test_clip_custom_numbers_match_ppo_loss() -> None:
    import torch

    from ppo_cli.core.ppo import ppo_loss

    doc = run_json(
        ["explain-clip", "--old-logprobs", "-1,-2", "--new-logprobs", "-0.5,-2.5",
         "--advantages", "1,2", "--clip-coef", "0.1"]
    )  # fmt: skip
    old, new, adv = torch.tensor([-1.0, -2.0]), torch.tensor([-0.5, -2.5]), torch.tensor([1.0, 2.0])
    z = torch.zeros(2)
    parts = ppo_loss(new, old, adv, z, z, z, z, torch.ones(2), 0.1)
    assert doc["policy_loss"] == pytest.approx(float(parts.policy_loss), abs=1e-6)
    assert doc["band"] == [0.9, 1.1]


@pytest.mark.parametrize(
    "args",
    [
        ["--old-logprobs", "-1,-2", "--new-logprobs", "-1", "--advantages", "1"],
        ["--old-logprobs", "0.5", "--new-logprobs", "-1", "--advantages", "1"],
        ["--old-logprobs", "-1", "--new-logprobs", "-1", "--advantages", "x"],
        ["--old-logprobs", "-1"],
        ["--clip-coef", "0"],
        ["--clip-coef", "1.5"],
    ],
)
def test_clip_bad_input_exit_2(args: list[str]) -> None:
    result = runner.invoke(app, ["explain-clip", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith("ppoqa: error:") and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("command", ["explain-gae", "explain-clip", "plot"])
def test_help_has_a_summary_and_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example: ppoqa " + command.split("-")[0] in result.stdout
