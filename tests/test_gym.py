"""Gymnasium training: truncation bootstrapping by hand, env errors, a real CartPole run."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import TimeLimit
from typer.testing import CliRunner

from ppo_cli.cli import app
from ppo_cli.config import Config, resolve
from ppo_cli.core.policy import ActorCritic
from ppo_cli.core.rundir import load_checkpoint
from ppo_cli.gym.envs import EnvInfo
from ppo_cli.gym.rollout import GymCollector

runner = CliRunner()


class CounterEnv(gym.Env):
    """Observation [k] = steps taken this episode; reward 1 per step; the action is ignored.
    Terminates after `terminate_at` steps when given (a time limit is added by the test)."""

    observation_space = gym.spaces.Box(0.0, 100.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, terminate_at: int | None = None) -> None:
        self.terminate_at = terminate_at
        self.k = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.k += 1
        obs = np.array([float(self.k)], np.float32)
        return obs, 1.0, self.k == self.terminate_at, False, {}


class ValueIsTenPlusK(ActorCritic):
    """Fixed critic V([k]) = 10 + k, uniform actor: the hand computation needs known values."""

    kind = "test"

    def logits_values(self, obs, steps):
        return torch.zeros(obs.shape[0], 2), 10.0 + obs[:, 0]


def _collect(gamma: float, gae_lambda: float):
    # env 0: cut by the time limit after 3 steps; env 1: terminates after 2 steps;
    # env 2: terminates exactly at the time limit (terminated and truncated together).
    fns = [
        lambda: TimeLimit(CounterEnv(), max_episode_steps=3),
        lambda: TimeLimit(CounterEnv(terminate_at=2), max_episode_steps=3),
        lambda: TimeLimit(CounterEnv(terminate_at=3), max_episode_steps=3),
    ]
    envs = gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)
    info = EnvInfo("counter", obs_dim=1, num_actions=2, action_start=0, vector_mode="sync")
    collector = GymCollector(envs, info, seed=0, device=torch.device("cpu"))
    rollout, finished = collector.collect(ValueIsTenPlusK(), num_steps=4)
    envs.close()
    return rollout, finished, rollout.advantages(gamma, gae_lambda)


def test_counter_env_passes_gymnasium_checker() -> None:
    check_env(CounterEnv(terminate_at=2), skip_render_check=True)


def test_truncation_bootstraps_final_value_and_termination_does_not() -> None:
    rollout, finished, gae = _collect(gamma=0.5, gae_lambda=1.0)
    # NEXT_STEP autoreset: the step after an episode end only resets, so it is not a sample.
    assert rollout.valid.T.tolist() == [
        [True, True, True, False],
        [True, True, False, True],
        [True, True, True, False],
    ]
    # With lambda = 1 the returns are discounted sums (gamma 0.5), by hand:
    # env 0, truncated at t=2 with final obs [3]: R2 = 1 + 0.5 * V([3]) = 1 + 0.5 * 13 = 7.5,
    #   R1 = 1 + 0.5 * 7.5 = 4.75, R0 = 1 + 0.5 * 4.75 = 3.375.
    # env 1, terminated at t=1: R1 = 1 (no bootstrap), R0 = 1 + 0.5 * 1 = 1.5;
    #   its next episode starts at t=3: R3 = 1 + 0.5 * V([1]) = 1 + 0.5 * 11 = 6.5.
    # env 2, terminated and truncated at t=2: termination wins, no bootstrap:
    #   R2 = 1, R1 = 1.5, R0 = 1.75.
    ret = gae.returns.T
    assert ret[0, :3].tolist() == pytest.approx([3.375, 4.75, 7.5])
    assert [ret[1, 0].item(), ret[1, 1].item(), ret[1, 3].item()] == pytest.approx([1.5, 1, 6.5])
    assert ret[2, :3].tolist() == pytest.approx([1.75, 1.5, 1.0])
    # Advantages = returns - V, V([k]) = 10 + k.
    assert gae.advantages.T[0, :3].tolist() == pytest.approx([-6.625, -6.25, -4.5])
    # Episodes counted over real steps only: (env, return, length) in the order they ended.
    assert finished == [(1, 2.0, 2), (0, 3.0, 3), (2, 3.0, 3)]


def test_gae_lambda_below_one_by_hand() -> None:
    _, _, gae = _collect(gamma=0.5, gae_lambda=0.5)
    # env 0 deltas: d2 = 1 + 0.5*13 - 12 = -4.5 (bootstrap in the reward, then done),
    # d1 = 1 + 0.5*12 - 11 = -4, d0 = 1 + 0.5*11 - 10 = -3.5; gamma*lambda = 0.25:
    # A2 = -4.5, A1 = -4 + 0.25*(-4.5) = -5.125, A0 = -3.5 + 0.25*(-5.125) = -4.78125.
    assert gae.advantages.T[0, :3].tolist() == pytest.approx([-4.78125, -5.125, -4.5])


def test_batch_keeps_only_real_transitions() -> None:
    rollout, _, _ = _collect(gamma=0.5, gae_lambda=1.0)
    batch, _ = rollout.to_batch(0.5, 1.0)
    assert batch.size == 9  # 12 steps minus the three reset steps
    assert batch.obs.shape == (9, 1) and bool(batch.mask.all())
    # time-major order: t0 envs 0,1,2; t1 envs 0,1,2; t2 envs 0,2; t3 env 1
    assert batch.returns.tolist() == pytest.approx([3.375, 1.5, 1.75, 4.75, 1, 1.5, 7.5, 1, 6.5])


def test_unknown_env_suggests_close_ids() -> None:
    result = runner.invoke(app, ["train", "--env", "CartPol-v1"])
    assert result.exit_code == 1
    assert "unknown environment 'CartPol-v1'" in result.stderr
    assert "did you mean CartPole-v1" in result.stderr


def test_unsupported_spaces_say_what_is_supported() -> None:
    result = runner.invoke(app, ["train", "--env", "tests.user_envs:Words-v0"])
    assert result.exit_code == 1
    assert "Text observation space" in result.stderr
    assert "Discrete, MultiDiscrete and Box action spaces" in result.stderr


def test_tuned_settings_sit_between_defaults_and_config_and_flags(tmp_path: Path) -> None:
    assert resolve({}) == Config()  # text QA: untouched defaults
    tuned = resolve({"env": "CartPole-v1"})
    assert (tuned.policy, tuned.num_envs, tuned.timesteps) == ("mlp", 32, 100_000)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("env: CartPole-v1\nnum_envs: 8\nlearning_rate: 0.01\n")
    from_file = resolve({"learning_rate": 0.02}, cfg_file)
    assert (from_file.num_envs, from_file.learning_rate) == (8, 0.02)
    assert from_file.num_steps == tuned.num_steps


def test_env_kwargs_add_to_an_entrys_own_instead_of_dropping_them(tmp_path: Path) -> None:
    # Ant-v5's entry leaves out the contact forces; a user's --env-kwargs for another key must
    # not silently bring them back, and naming that key must change it.
    own = resolve({"env": "Ant-v5"}).env_kwargs
    assert own == {"include_cfrc_ext_in_observation": False}
    flagged = resolve({"env": "Ant-v5", "env_kwargs": {"ctrl_cost_weight": 0.4}})
    assert flagged.env_kwargs == {**own, "ctrl_cost_weight": 0.4}
    back = resolve({"env": "Ant-v5", "env_kwargs": {"include_cfrc_ext_in_observation": True}})
    assert back.env_kwargs == {"include_cfrc_ext_in_observation": True}
    cfg_file = tmp_path / "ant.yaml"
    cfg_file.write_text("env: Ant-v5\nenv_kwargs:\n  ctrl_cost_weight: 0.4\n")
    both = resolve({"env_kwargs": {"healthy_reward": 2.0}}, cfg_file).env_kwargs
    assert both == {**own, "ctrl_cost_weight": 0.4, "healthy_reward": 2.0}


def test_every_shipped_entry_names_a_registered_env_and_resolves_to_its_values() -> None:
    # A typo in hyperparams/gym.yaml (a key, a value, an id) would otherwise reach only the
    # users of that one env, after they installed its extra.
    from importlib import resources

    import yaml

    from ppo_cli.presets import TUNED_FILE

    text = resources.files("ppo_cli").joinpath(TUNED_FILE).read_text(encoding="utf-8")
    table = yaml.safe_load(text)
    for name in ("default", "default_continuous"):
        table.pop(name)
    assert {"Pendulum-v1", "MountainCarContinuous-v0", "HalfCheetah-v5", "Walker2d-v5"} <= set(
        table
    )
    for env_id, entry in table.items():
        assert env_id in gym.registry, env_id
        cfg = resolve({"env": env_id})
        for key, value in entry.items():
            assert getattr(cfg, key) == value, (env_id, key)


def test_gym_runs_keep_cleanrl_vf_coef_while_text_qa_uses_its_own() -> None:
    # Text QA's default vf_coef is 0.1 (issue 10); gymnasium entries measured with 0.5 must keep
    # it through the `default` entry, including ids with no entry of their own.
    assert Config().vf_coef == 0.1
    for env in ("CartPole-v1", "Pendulum-v1", "Blackjack-v1"):
        assert resolve({"env": env}).vf_coef == 0.5, env


METRIC_KEYS = {
    "iteration",
    "global_step",
    "progress",
    "sps",
    "loss",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clipfrac",
    "explained_variance",
    "learning_rate",
    "epoch_losses",
    "wall_seconds",
}


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("gym") / "run"
    result = runner.invoke(
        app, ["train", "--env", "CartPole-v1", "--timesteps", "4096", "--run-dir", str(run)]
    )
    assert result.exit_code == 0, result.stderr
    return run


def test_short_cartpole_run_writes_a_run_directory(cartpole_run: Path) -> None:
    records = [
        json.loads(line) for line in (cartpole_run / "metrics.jsonl").read_text().splitlines()
    ]
    assert len(records) == 4  # 4096 steps / (64 envs x 16 steps)
    assert all(set(r) >= METRIC_KEYS for r in records)
    assert records[-1]["global_step"] == 4096
    assert any("episodic_return" in r and "episodic_length" in r for r in records)
    assert records[-1]["learning_rate"] < records[0]["learning_rate"]  # annealed
    ckpt = load_checkpoint(cartpole_run)  # weights_only=True
    assert (ckpt["env"], ckpt["obs_dim"], ckpt["num_actions"]) == ("CartPole-v1", 4, 2)
    assert ckpt["global_step"] == 4096


def test_same_seed_gives_same_metrics(tmp_path: Path) -> None:
    def metrics(name: str) -> list[dict]:
        args = ["train", "--env", "CartPole-v1", "--timesteps", "1024", "--json"]
        assert runner.invoke(app, [*args, "--run-dir", str(tmp_path / name)]).exit_code == 0
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [
            {k: v for k, v in json.loads(x).items() if k not in ("sps", "wall_seconds")}
            for x in lines
        ]

    assert metrics("a") == metrics("b")


def test_eval_json_on_a_gym_run(cartpole_run: Path) -> None:
    result = runner.invoke(app, ["eval", "--run", str(cartpole_run), "--episodes", "3", "--json"])
    assert result.exit_code == 0
    assert result.stderr == ""
    doc = json.loads(result.stdout)
    assert doc["env"] == "CartPole-v1"
    assert len(doc["returns"]) == len(doc["lengths"]) == 3
    assert doc["mean_return"] == pytest.approx(float(np.mean(doc["returns"])))
    assert doc["std_return"] == pytest.approx(float(np.std(doc["returns"])))
    # CartPole pays 1 per step: a return is its episode's length.
    assert doc["returns"] == [float(n) for n in doc["lengths"]]


def test_eval_table_on_a_gym_run(cartpole_run: Path) -> None:
    result = runner.invoke(app, ["eval", "--run", str(cartpole_run), "--episodes", "2"])
    assert result.exit_code == 0
    assert "mean return" in result.stdout and "±" in result.stdout


def test_ask_on_a_gym_run_is_a_clear_error(cartpole_run: Path) -> None:
    result = runner.invoke(app, ["ask", "What is 2+2?", "--run", str(cartpole_run)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "is a run of CartPole-v1, not a text-QA run" in result.stderr
    assert "Traceback" not in result.stderr


def test_interrupted_gym_run_resumes_to_the_planned_end(tmp_path: Path) -> None:
    """Ctrl-C keeps a resumable checkpoint; --resume continues the counters and metrics."""
    from ppo_cli.core.trainer import Callbacks, train
    from ppo_cli.errors import TrainingInterrupted

    cfg = resolve({"env": "CartPole-v1", "timesteps": 4096})
    per_iteration = cfg.num_envs * cfg.num_steps

    class StopAt3(Callbacks):
        def on_iteration(self, record: dict) -> None:
            if record["iteration"] == 3:
                raise KeyboardInterrupt

    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(cfg, run, StopAt3())
    assert load_checkpoint(run)["iteration"] == 3
    result = train(cfg, run, Callbacks(), resume=True)
    assert result.iterations == 4096 // per_iteration
    assert result.steps == result.iterations * per_iteration
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == list(range(1, result.iterations + 1))
    assert [r["global_step"] for r in records] == [
        per_iteration * i for i in range(1, result.iterations + 1)
    ]


def test_trace_works_on_a_gym_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["train", "--env", "CartPole-v1", "--timesteps", "2048", "--run-dir",
         str(tmp_path / "r"), "--trace-iterations", "1", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [t["iteration"] for t in doc["traces"]] == [1]
    assert doc["traces"][0]["epochs"], "per-epoch losses from the real update"


def test_eval_dataset_on_a_gym_run_is_a_usage_error(cartpole_run: Path) -> None:
    result = CliRunner().invoke(
        app, ["eval", "--run", str(cartpole_run), "--dataset", "examples/capitals.yaml"]
    )
    assert result.exit_code == 2
    assert "--dataset is for text-QA runs" in result.stderr
    assert "Traceback" not in result.stderr
