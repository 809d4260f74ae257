"""Issue 12: Box/MultiDiscrete actions, Discrete/Dict observations, normalization saved with the
model, a user's own env module with --env-kwargs, and --record."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from typer.testing import CliRunner

import tests.user_envs as user_envs
from ppo_cli.cli import app
from ppo_cli.core.rundir import load_checkpoint, read_config
from ppo_cli.errors import UsageError
from ppo_cli.gym.envs import make_vec_env, parse_env_kwargs
from ppo_cli.gym.normalize import Normalizer, RunningMeanStd
from ppo_cli.gym.policy import MLPActorCritic, build_policy
from ppo_cli.gym.rollout import GymCollector

runner = CliRunner()


def _train(tmp_path: Path, name: str, *args: str) -> tuple[Path, dict]:
    run = tmp_path / name
    result = runner.invoke(app, ["train", *args, "--run-dir", str(run), "--json"])
    assert result.exit_code == 0, result.stderr
    return run, json.loads(result.stdout)


def _eval(run: Path, *args: str) -> dict:
    result = runner.invoke(app, ["eval", "--run", str(run), "--json", *args])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


# -- the Gaussian and multi-categorical heads --------------------------------------------------


def test_gaussian_logprob_and_entropy_sum_over_dimensions() -> None:
    torch.manual_seed(0)
    policy = MLPActorCritic(3, 2, 16, action_kind="box", log_std_init=-0.5)
    obs = torch.randn(5, 3)
    action, logprob, _ = policy.act(obs)
    mean, _ = policy.logits_values(obs, None)
    std = torch.exp(torch.tensor(-0.5))
    by_hand = -((action - mean) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * np.log(2 * np.pi)
    assert logprob.tolist() == pytest.approx(by_hand.sum(-1).tolist(), abs=1e-5)
    new_logprob, entropy, _ = policy.evaluate(obs, action)
    assert new_logprob.tolist() == pytest.approx(logprob.tolist(), abs=1e-6)
    per_dim = 0.5 + 0.5 * np.log(2 * np.pi) + (-0.5)
    assert entropy.tolist() == pytest.approx([2 * per_dim] * 5, abs=1e-5)
    greedy, _, _ = policy.act(obs, greedy=True)
    assert torch.equal(greedy, mean)  # greedy = the mean
    assert policy.log_std.requires_grad and policy.log_std.shape == (2,)  # state-independent


def test_multidiscrete_is_independent_categoricals() -> None:
    torch.manual_seed(0)
    policy = MLPActorCritic(1, 2, 8, action_kind="multi_discrete", action_nvec=[3, 4])
    obs = torch.zeros(4, 1)
    action, logprob, _ = policy.act(obs)
    assert action.shape == (4, 2) and int(action[:, 0].max()) < 3 and int(action[:, 1].max()) < 4
    logits, _ = policy.logits_values(obs, None)
    a, b = logits[:, :3].log_softmax(-1), logits[:, 3:].log_softmax(-1)
    by_hand = a.gather(1, action[:, :1]).squeeze(1) + b.gather(1, action[:, 1:]).squeeze(1)
    assert logprob.tolist() == pytest.approx(by_hand.tolist(), abs=1e-6)
    rebuilt = build_policy(policy.spec())
    assert rebuilt.spec() == policy.spec()


def test_box_actions_are_clipped_at_the_env_and_trained_unclipped() -> None:
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.FlattenObservation(user_envs.Target())] * 2,
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )
    _, info = make_vec_env("tests.user_envs:Target-v0", 1, "sync")
    assert (info.action_kind, info.obs_dim) == ("box", 2 + 3)  # Dict: Box(2) + one-hot(3)
    policy = MLPActorCritic(info.obs_dim, 2, 8, action_kind="box", log_std_init=1.5)
    torch.manual_seed(0)
    rollout, _ = GymCollector(envs, info, 0, torch.device("cpu")).collect(policy, 16)
    stored = rollout.actions.reshape(-1, 2)
    assert stored.abs().max() > 1.0, "wide Gaussian: some samples fall outside [-1, 1]"
    received = np.concatenate([np.stack(e.unwrapped.received) for e in envs.envs])
    assert np.abs(received).max() <= 1.0
    assert sorted(received.ravel().tolist()) == pytest.approx(
        sorted(np.clip(stored.numpy(), -1, 1).ravel().tolist())
    )
    envs.close()


# -- normalization -----------------------------------------------------------------------------


def test_running_mean_std_matches_numpy_over_all_batches() -> None:
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, (n, 2)) for n in (1, 7, 30)]
    rms = RunningMeanStd((2,))
    for b in batches:
        rms.update(b)
    every = np.concatenate(batches)
    assert rms.mean == pytest.approx(every.mean(0), rel=1e-4)
    assert rms.var == pytest.approx(every.var(0), rel=1e-3)


def test_reward_scaling_divides_by_the_std_of_the_discounted_return() -> None:
    norm = Normalizer(1, 1, norm_reward=True, gamma=0.5)
    returns = []
    for r, done in [(1.0, False), (2.0, False), (4.0, True), (1.0, False)]:
        scaled = norm.reward(np.array([r]), np.array([done]), np.array([True]))
        returns.append(r)
    # discounted returns by hand: 1, 0.5*1 + 2 = 2.5, 0.5*2.5 + 4 = 5.25, restart: 1
    rms = RunningMeanStd(())
    rms.update(np.array([1.0, 2.5, 5.25, 1.0]).reshape(-1, 1)[:, 0])
    assert norm.ret_rms.var == pytest.approx(rms.var, rel=1e-3)
    assert float(scaled[0]) == pytest.approx(1.0 / np.sqrt(rms.var), rel=1e-3)
    frozen = Normalizer.frozen_from(norm.state(), 1, 1)
    before = frozen.ret_rms.var
    frozen.reward(np.array([100.0]), np.array([False]), np.array([True]))
    assert frozen.ret_rms.var == before  # eval never updates the statistics


def test_normalized_run_saves_statistics_and_eval_uses_them(tmp_path: Path) -> None:
    args = ["--env", "Pendulum-v1", "--timesteps", "2048", "--num-envs", "2", "--num-steps",
            "256", "--norm-obs", "--norm-reward"]  # fmt: skip
    run, summary = _train(tmp_path, "pend", *args)
    ckpt = load_checkpoint(run)
    stats = ckpt["normalizer"]
    assert stats["norm_obs"] and stats["norm_reward"]
    assert stats["obs_rms"]["count"] >= 2048 and len(stats["obs_rms"]["mean"]) == 3
    # train's final evaluation and `ppoqa eval` both use the frozen statistics: same episodes.
    assert _eval(run)["mean_return"] == pytest.approx(summary["mean_return"])
    # Without them the same weights act differently (what cleanrl issue #425 is about).
    from ppo_cli.gym.evaluate import evaluate_gym, load_gym_run

    loaded = load_gym_run(run)
    raw = [e.episode_return for e in evaluate_gym(loaded.policy, "Pendulum-v1", 20)]
    assert float(np.mean(raw)) != pytest.approx(summary["mean_return"])


def test_continuous_run_learns_on_a_user_box_env(tmp_path: Path) -> None:
    """Target-v0 pays -|a - 0.5|^2 per dim over 10 steps: a random Gaussian scores about -13,
    the optimum 0. A short real run must move the mean most of the way."""
    args = ["--env", "tests.user_envs:Target-v0", "--timesteps", "4096", "--num-envs", "4",
            "--num-steps", "64", "--learning-rate", "0.01", "--ent-coef", "0"]  # fmt: skip
    run, summary = _train(tmp_path, "target", *args)
    assert summary["mean_return"] > -1.5  # the initial mean 0 scores -5
    assert read_config(run)["env"] == "tests.user_envs:Target-v0"


def test_relu_network_without_orthogonal_init_round_trips_and_learns(tmp_path: Path) -> None:
    """rl-zoo3's MuJoCo networks (ReLU, torch's default init): eval rebuilds the same network
    from the checkpoint and plays the same greedy episodes as train's summary."""
    args = ["--env", "tests.user_envs:Target-v0", "--timesteps", "4096", "--num-envs", "4",
            "--num-steps", "64", "--learning-rate", "0.01", "--ent-coef", "0", "--activation",
            "relu", "--no-ortho-init"]  # fmt: skip
    run, summary = _train(tmp_path, "relu", *args)
    spec = load_checkpoint(run)["policy_spec"]
    assert spec["activation"] == "relu" and spec["ortho_init"] is False
    policy = build_policy(spec)
    assert any(isinstance(m, torch.nn.ReLU) for m in policy.modules())
    assert not any(isinstance(m, torch.nn.Tanh) for m in policy.modules())
    assert summary["mean_return"] > -1.5
    assert _eval(run)["mean_return"] == pytest.approx(summary["mean_return"])


def test_default_mlp_spec_has_no_activation_keys_so_old_checkpoints_read_the_same() -> None:
    spec = MLPActorCritic(3, 2, 16).spec()
    assert "activation" not in spec and "ortho_init" not in spec
    torch.manual_seed(0)
    relu = MLPActorCritic(3, 2, 16, activation="relu")
    x = torch.randn(4, 3)
    by_modules = relu.actor(x)  # nn.Module forward
    assert torch.equal(relu.logits_values(x, None)[0], by_modules)
    with pytest.raises(ValueError, match="activation"):
        MLPActorCritic(3, 2, 16, activation="gelu")


def test_an_unknown_activation_is_a_usage_error() -> None:
    result = runner.invoke(app, ["train", "--env", "CartPole-v1", "--activation", "gelu"])
    assert result.exit_code == 2
    assert "activation" in result.stderr and "tanh" in result.stderr
    assert "Traceback" not in result.stderr


def test_masked_actions_are_never_sampled_and_scored_under_the_same_mask() -> None:
    torch.manual_seed(0)
    policy = MLPActorCritic(4, 6, 8, action_mask=True)
    obs = torch.randn(2000, 4)
    allowed = torch.rand(2000, 6) < 0.4
    allowed[torch.arange(2000), torch.randint(0, 6, (2000,))] = True  # at least one each
    action, logprob, _ = policy.act(obs, action_mask=allowed)
    assert allowed[torch.arange(2000), action].all()
    logits, _ = policy.logits_values(obs, None)
    by_hand = torch.log_softmax(logits.masked_fill(~allowed, float("-inf")), -1)
    assert torch.allclose(logprob, by_hand.gather(1, action[:, None]).squeeze(1), atol=1e-5)
    new_logprob, entropy, _ = policy.evaluate(obs, action, action_mask=allowed)
    assert torch.allclose(new_logprob, logprob)
    assert (entropy <= torch.log(allowed.sum(1).float()) + 1e-5).all()
    greedy, _, _ = policy.act(obs, greedy=True, action_mask=allowed)
    assert allowed[torch.arange(2000), greedy].all()
    assert policy.spec()["action_mask"] is True
    assert "action_mask" not in MLPActorCritic(4, 6, 8).spec()


def test_taxi_trains_and_evaluates_under_its_action_mask(tmp_path: Path) -> None:
    args = ["--env", "Taxi-v4", "--timesteps", "2048", "--num-envs", "4", "--num-steps",
            "128", "--action-mask"]  # fmt: skip
    run, summary = _train(tmp_path, "taxi", *args)
    assert load_checkpoint(run)["policy_spec"]["action_mask"] is True
    assert _eval(run)["mean_return"] == pytest.approx(summary["mean_return"])  # same episodes
    # the greedy policy never takes an action the env ruled out: no illegal pickup/drop-off
    from ppo_cli.gym.evaluate import load_gym_run

    loaded = load_gym_run(run)
    env = gym.make("Taxi-v4")
    obs, info = env.reset(seed=3)
    for _ in range(50):
        x = torch.nn.functional.one_hot(torch.tensor([obs]), 500).float()
        mask = torch.from_numpy(info["action_mask"].astype(bool))[None]
        a, _, _ = loaded.policy.act(x, greedy=True, action_mask=mask)
        assert info["action_mask"][int(a)] == 1
        obs, reward, term, trunc, info = env.step(int(a))
        assert reward != -10  # Taxi's penalty for an illegal pickup or drop-off
        if term or trunc:
            obs, info = env.reset()


@pytest.mark.parametrize(
    ("env", "says"),
    [("CartPole-v1", "has no 'action_mask'"), ("Pendulum-v1", "needs Discrete actions")],
)
def test_action_mask_where_the_env_has_none_is_one_line(env: str, says: str) -> None:
    result = runner.invoke(app, ["train", "--env", env, "--timesteps", "256", "--action-mask"])
    assert result.exit_code == 1
    assert says in result.stderr and "--no-action-mask" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


# -- spaces, user modules, kwargs --------------------------------------------------------------


def test_discrete_observations_are_one_hot_and_kwargs_reach_the_constructor(
    tmp_path: Path,
) -> None:
    env = "tests.user_envs:Corridor-v0"
    args = ["--env", env, "--env-kwargs", "length=6", "--timesteps", "4096", "--num-envs", "4"]
    run, summary = _train(tmp_path, "corr", *args, "--num-steps", "64")
    ckpt = load_checkpoint(run)
    assert ckpt["obs_dim"] == 6 and ckpt["env_kwargs"] == {"length": 6}
    assert read_config(run)["env_kwargs"] == {"length": 6}
    assert summary["mean_return"] == 1.0  # walks right to the end
    doc = _eval(run, "--episodes", "3")
    assert doc["lengths"] == [5, 5, 5]  # eval rebuilt the 6-long corridor: 5 steps right


def test_multidiscrete_run_learns_both_components(tmp_path: Path) -> None:
    args = ["--env", "tests.user_envs:Pick-v0", "--timesteps", "4096", "--num-envs", "4"]
    _, summary = _train(tmp_path, "pick", *args, "--num-steps", "32", "--lr", "0.003")
    assert summary["mean_return"] == 10.0  # 5 steps x 2 right components


def test_frozenlake_and_blackjack_observations_are_flattened(tmp_path: Path) -> None:
    run, _ = _train(tmp_path, "fl", "--env", "FrozenLake-v1", "--timesteps", "1024")
    assert load_checkpoint(run)["obs_dim"] == 16  # Discrete(16) one-hot
    run, _ = _train(tmp_path, "bj", "--env", "Blackjack-v1", "--timesteps", "1024")
    assert load_checkpoint(run)["obs_dim"] == 32 + 11 + 2  # Tuple of three Discrete


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["map_name=8x8", "is_slippery=false"], {"map_name": "8x8", "is_slippery": False}),
        (["x=0.5", "n=3", "s='3'", "none=null", "empty="], {"x": 0.5, "n": 3, "s": "3",
                                                           "none": None, "empty": ""}),
        (["cmd=__import__('os')"], {"cmd": "__import__('os')"}),  # text, never evaluated
    ],
)  # fmt: skip
def test_env_kwargs_are_yaml_scalars(items: list[str], expected: dict) -> None:
    assert parse_env_kwargs(items) == expected


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--env-kwargs", "length"], 2, "expected KEY=VALUE"),
        (["--env-kwargs", "length=[1, 2]"], 2, "not a single YAML value"),
        (["--env-kwargs", "length={a: 1"], 2, "not a single YAML value"),
        (["--env-kwargs", "width=3"], 1, "constructor rejected --env-kwargs width"),
    ],
)
def test_bad_env_kwargs_are_one_line(args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, ["train", "--env", "tests.user_envs:Corridor-v0", *args])
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("tests.broken_env_module:X-v0", "RuntimeError: corridor.yaml is missing"),
        ("tests.no_such_module:X-v0", "ModuleNotFoundError"),
        ("tests.user_envs:Nope-v0", "did not register 'Nope-v0'"),
        ("tests.user_envs:Words-v0", "Text observation space; ppoqa supports Box, Discrete"),
    ],
)
def test_user_module_errors_are_one_line(env: str, message: str) -> None:
    result = runner.invoke(app, ["train", "--env", env])
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_parse_env_kwargs_rejects_duplicates() -> None:
    with pytest.raises(UsageError, match="given twice"):
        parse_env_kwargs(["a=1", "a=2"])


# -- --record ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained CartPole: its greedy episodes are ~10 steps, so the gif is quick."""
    run = tmp_path_factory.mktemp("rec") / "run"
    result = runner.invoke(
        app, ["train", "--env", "CartPole-v1", "--timesteps", "512", "--run-dir", str(run), "-q"]
    )
    assert result.exit_code == 0, result.stderr
    return run


def test_record_writes_a_gif_of_greedy_episodes(cartpole_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("pygame")  # classic-control rendering (the `render` extra)
    from PIL import Image

    gif = tmp_path / "agent.gif"
    doc = _eval(cartpole_run, "--episodes", "1", "--record", str(gif))
    # the same greedy episode as the evaluation; one frame per step plus the reset frame
    assert doc["record"]["returns"] == pytest.approx(doc["returns"])
    assert doc["record"]["frames"] == doc["lengths"][0] + 1
    with Image.open(gif) as im:
        # (Pillow merges identical consecutive frames into one longer one)
        assert 1 < im.n_frames <= doc["record"]["frames"] and im.size == (600, 400)


def test_record_refuses_what_it_cannot_or_must_not_write(cartpole_run: Path, tmp_path: Path):
    existing = tmp_path / "mine.gif"
    existing.write_text("not ours")
    for path, code, message in [
        (existing, 1, "already exists"),
        (tmp_path / "a.webm", 2, "unknown format"),
        (tmp_path / "missing" / "a.gif", 1, "does not exist"),
    ]:
        result = runner.invoke(app, ["eval", "--run", str(cartpole_run), "--record", str(path)])
        assert result.exit_code == code, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
    assert existing.read_text() == "not ours"


def test_record_needs_rgb_array_rendering(tmp_path: Path) -> None:
    run, _ = _train(tmp_path, "corr", "--env", "tests.user_envs:Corridor-v0", "--timesteps",
                    "256", "--num-envs", "2", "--num-steps", "64")  # fmt: skip
    result = runner.invoke(app, ["eval", "--run", str(run), "--record", str(tmp_path / "a.gif")])
    assert result.exit_code == 1
    assert "has no rgb_array rendering" in result.stderr
    assert not (tmp_path / "a.gif").exists()


def test_record_picks_off_screen_opengl_for_mujoco_only_without_a_display() -> None:
    # GLFW (gymnasium's first choice) needs a display; on a headless Linux machine MuJoCo's
    # --record failed with an OpenGL context error until EGL was chosen for it.
    from ppo_cli.gym.record import headless_opengl_default, render_failure_hint

    for environ, platform, expected in [
        ({}, "linux", "egl"),
        ({"DISPLAY": ":0"}, "linux", None),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", None),
        ({"MUJOCO_GL": "osmesa"}, "linux", "osmesa"),  # the user's choice stands
        ({}, "darwin", None),  # no EGL on macOS
    ]:
        headless_opengl_default(environ, platform)
        assert environ.get("MUJOCO_GL") == expected, (environ, platform)
    opengl = "an OpenGL platform library has not been loaded into this process"
    assert "MUJOCO_GL=egl" in render_failure_hint(opengl)
    assert "ppoqa[render]" in render_failure_hint("No module named 'pygame'")


def test_mujoco_warnings_are_said_once(capfd: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mujoco")
    from ppo_cli.gym.envs import make_vec_env

    for _ in range(2):
        envs, _info = make_vec_env("HalfCheetah-v5", 2, "sync")
        envs.reset(seed=0)
        envs.close()
    err = capfd.readouterr().err
    assert err.count("settotalmass") <= 1, err
    assert "WARNING: compiler attribute" not in err


def test_an_error_in_the_users_env_names_the_env_and_the_call(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["train", "--env", "tests.user_envs:Crash-v0", "--timesteps", "512", "--num-envs", "2",
         "--num-steps", "64", "--run-dir", str(tmp_path / "run")],
    )  # fmt: skip
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(
        "ppoqa: error: tests.user_envs:Crash-v0: the env's step() raised ZeroDivisionError: "
        "the user's physics divided by zero"
    ), result.stderr
    assert "Traceback" not in result.stderr


def test_resume_continues_the_normalization_statistics(tmp_path: Path) -> None:
    """An interrupted normalized run resumes from its saved statistics, not from zero."""
    from ppo_cli.config import resolve
    from ppo_cli.core.trainer import Callbacks, train
    from ppo_cli.errors import TrainingInterrupted

    overrides = {"env": "Pendulum-v1", "timesteps": 2048, "num_envs": 2, "num_steps": 128,
                 "norm_obs": True, "save_every": 1}  # fmt: skip
    cfg = resolve(overrides)

    class StopAt2(Callbacks):
        def on_iteration(self, record: dict) -> None:
            if record["iteration"] == 2:
                raise KeyboardInterrupt

    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(cfg, run, StopAt2())
    saved = load_checkpoint(run)["normalizer"]["obs_rms"]
    assert saved["count"] >= 2 * 256  # two iterations of observations
    train(cfg, run, Callbacks(), resume=True)
    final = load_checkpoint(run)["normalizer"]["obs_rms"]
    # 8 iterations x 256 steps in all (+ the reset observations), not 6 iterations' worth
    assert final["count"] >= 8 * 256
