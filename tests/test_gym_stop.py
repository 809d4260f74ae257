"""Gymnasium ids without a tuned entry get defaults from their action space, and a run stops
once its greedy evaluation reaches the env's reward_threshold (or --target-return)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
from typer.testing import CliRunner

import tests.user_envs  # noqa: F401  (registers Target-v0, Corridor-v0)
from ppo_cli.cli import app
from ppo_cli.config import resolve
from ppo_cli.gym.envs import env_reward_threshold, has_continuous_actions
from ppo_cli.gym.task import GymTask
from ppo_cli.presets import defaults_note, has_tuned_entry, tuned_settings

runner = CliRunner()

# A tiny CartPole run: 8 envs x 16 steps, 12 iterations at most.
TINY = ["--num-envs", "8", "--num-steps", "16", "--timesteps", "1536", "--seed", "0"]


def test_an_id_without_an_entry_gets_defaults_from_its_action_space() -> None:
    assert not has_tuned_entry("tests.user_envs:Target-v0")
    assert has_continuous_actions("tests.user_envs:Target-v0")  # Box actions
    assert not has_continuous_actions("Blackjack-v1")  # Discrete actions
    box = resolve({"env": "tests.user_envs:Target-v0"})
    continuous = tuned_settings("no-such-id", continuous=True)
    # CleanRL's ppo_continuous_action.py: one env, 2048 steps, normalization on
    shape = (box.num_envs, box.num_steps, box.update_epochs, box.num_minibatches)
    assert shape == (1, 2048, 10, 32)
    assert box.norm_obs and box.norm_reward and box.clip_vloss and box.norm_adv_minibatch
    assert {k: getattr(box, k) for k in continuous} == continuous
    discrete = resolve({"env": "Blackjack-v1"})
    assert (discrete.num_envs, discrete.num_steps, discrete.timesteps) == (4, 128, 500_000)
    assert not discrete.norm_obs
    # flags still win over the space's defaults
    assert resolve({"env": "tests.user_envs:Target-v0", "num_envs": 3}).num_envs == 3
    # an id with its own entry keeps it, whatever its actions
    assert resolve({"env": "Pendulum-v1"}).num_envs == 16
    assert "continuous-action defaults" in defaults_note("X-v0", True)
    assert "discrete-action defaults" in defaults_note("X-v0", False)


def test_an_env_that_cannot_be_created_gets_the_plain_default() -> None:
    assert not has_continuous_actions("NoSuchEnv-v0")
    assert env_reward_threshold("NoSuchEnv-v0") is None
    assert env_reward_threshold("CartPole-v1") == 475.0


def test_train_says_which_defaults_an_id_without_an_entry_got(tmp_path: Path) -> None:
    args = ["train", "--env", "tests.user_envs:Target-v0", "--timesteps", "64", "--num-steps",
            "32", "--num-minibatches", "2", "--update-epochs", "1", "-q"]  # fmt: skip
    result = runner.invoke(app, [*args, "--run-dir", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if "no tuned entry" in line]
    assert len(notes) == 1 and "continuous-action defaults" in notes[0]
    result = runner.invoke(app, [*args, "--run-dir", str(tmp_path / "b"), "--json"])
    assert result.exit_code == 0, result.output
    assert "continuous-action defaults" in json.loads(result.stdout)["defaults"]
    shipped = runner.invoke(app, ["train", "--env", "CartPole-v1", *TINY, "-q", "--run-dir",
                                  str(tmp_path / "c"), "--no-early-stop"])  # fmt: skip
    assert shipped.exit_code == 0, shipped.output
    assert "no tuned entry" not in shipped.stderr


def test_a_run_stops_when_greedy_evaluation_reaches_the_target(tmp_path: Path) -> None:
    run = tmp_path / "r"
    result = runner.invoke(app, ["train", "--env", "CartPole-v1", *TINY, "--target-return",
                                 "9", "--run-dir", str(run), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["stopped_early"] and doc["stop_reason"] == "solved"
    assert doc["iterations"] < 12
    assert "reaching the target 9 (--target-return)" in doc["stop_message"]
    assert doc["mean_return"] >= 9  # the final evaluation is the check that stopped it
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["eval_return"] == doc["mean_return"]
    assert "target_return: 9.0" in (run / "config.yaml").read_text()
    # without --json the message is one line on stderr
    again = runner.invoke(app, ["train", "--env", "CartPole-v1", *TINY, "--target-return", "9",
                                "--run-dir", str(tmp_path / "s"), "-q"])  # fmt: skip
    assert again.exit_code == 0, again.output
    said = [x for x in again.stderr.splitlines() if "solved: greedy evaluation returned" in x]
    assert len(said) == 1 and said[0].startswith("ppoqa: ")


def test_the_env_threshold_is_the_default_target_and_no_early_stop_runs_everything(
    tmp_path: Path,
) -> None:
    assert gym.spec("CartPole-v1").reward_threshold == 475.0
    task = GymTask(resolve({"env": "CartPole-v1", "target_return": None}), None)
    assert task.target == task.cfg.target_return == 475.0  # what config.yaml will record
    assert GymTask(resolve({"env": "Pendulum-v1", "target_return": None}), None).target is None
    run = tmp_path / "r"
    result = runner.invoke(app, ["train", "--env", "CartPole-v1", *TINY, "--run-dir", str(run),
                                 "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "target_return: 500.0" in (run / "config.yaml").read_text()  # the entry's own
    args = ["train", "--env", "CartPole-v1", *TINY, "--target-return", "9", "--no-early-stop"]
    full = runner.invoke(app, [*args, "--run-dir", str(tmp_path / "n"), "--json"])
    assert full.exit_code == 0, full.output
    doc = json.loads(full.stdout)
    assert doc["iterations"] == 12 and not doc["stopped_early"]
    assert doc["stop_reason"] is None  # no early stop asked for: running it all is the plan
    short = runner.invoke(app, ["train", "--env", "CartPole-v1", *TINY, "--target-return",
                                "600", "--run-dir", str(tmp_path / "b"), "--json"])  # fmt: skip
    doc = json.loads(short.stdout)
    assert doc["stop_reason"] == "budget" and "short of the target 600" in doc["stop_message"]
    assert "early_stop: false" in (tmp_path / "n" / "config.yaml").read_text()


def test_no_early_stop_still_means_no_target_accuracy_for_text_qa() -> None:
    assert resolve({"early_stop": False}).target_accuracy is None
    assert resolve({}).target_accuracy == 1.0
