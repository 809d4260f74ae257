"""`ppoqa plot`: PNGs that open, with the panels their titles promise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from ppo_cli.cli import app
from ppo_cli.plotting import clip_figure, run_figure, trailing_mean

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_run(path: Path, env: str, records: list[dict]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(f"env: {env}\nseed: 0\n")
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def text_records(n: int = 12) -> list[dict]:
    out = []
    for i in range(1, n + 1):
        rec = {
            "iteration": i,
            "episodes": 64 * i,
            "steps": 300 * i,
            "mean_reward": -2 + i,
            "train_accuracy": i / n,
            "mean_length": 3.0,
            "loss": 1.0 / i,
            "policy_loss": -0.01,
            "value_loss": 1.0 / i,
            "entropy": 2.0,
            "approx_kl": 0.01,
            "clipfrac": 0.2,
            "epoch_losses": [1.5 / i, 1.2 / i, 1.1 / i, 1.0 / i],
            "learning_rate": 0.005,
            "wall_seconds": 0.1 * i,
        }
        if i % 3 == 0:
            rec["eval_accuracy"] = i / n
        out.append(rec)
    return out


def gym_records(n: int = 30) -> list[dict]:
    out = []
    for i in range(1, n + 1):
        rec = {
            "iteration": i,
            "global_step": 1024 * i,
            "episodic_length": 20 + 10 * i,
            "sps": 4000,
            "loss": 5.0 / i,
            "policy_loss": -0.01,
            "value_loss": 5.0 / i,
            "entropy": 0.6,
            "approx_kl": 0.005,
            "clipfrac": 0.1,
            "explained_variance": 0.5,
            "learning_rate": 2.5e-4,
            "epoch_losses": [5.0 / i] * 4,
            "wall_seconds": 0.5 * i,
        }
        if i % 4:  # some iterations finish no episode
            rec["episodic_return"] = 20.0 + 15 * i
        out.append(rec)
    return out


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    height, width, _ = imread(path).shape
    assert width > 800 and height > 400


def titles(fig) -> list[str]:  # noqa: ANN001
    return [ax.get_title() for ax in fig.axes]


def test_text_run_plot(tmp_path: Path) -> None:
    run = write_run(tmp_path / "text", "text-qa", text_records())
    result = runner.invoke(app, ["plot", "--run", str(run)])
    assert result.exit_code == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path == run / "training.png"
    assert_png(path)
    names = " | ".join(titles(run_figure(run)))
    for words in ("Loss curve", "Mean episode reward", "Accuracy", "moved the policy"):
        assert words in names


def test_loss_curve_has_every_epoch(tmp_path: Path) -> None:
    run = write_run(tmp_path / "text", "text-qa", text_records(5))
    loss_ax = run_figure(run).axes[0]
    per_epoch = loss_ax.get_lines()[0]
    assert len(per_epoch.get_ydata()) == 5 * 4
    assert per_epoch.get_xdata()[-1] == pytest.approx(5.0)


def test_gym_run_plot_has_smoothing_and_the_solved_line(tmp_path: Path) -> None:
    run = write_run(tmp_path / "gym", "CartPole-v1", gym_records())
    out = tmp_path / "curves.png"
    result = runner.invoke(app, ["plot", "--run", str(run), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"paths": [str(out)]}
    assert_png(out)
    fig = run_figure(run, window=5)
    ret_ax = fig.axes[0]
    assert ret_ax.get_title() == "Episodic return on CartPole-v1"
    labels = [ln.get_label() for ln in ret_ax.get_lines()]
    assert "smoothed (mean of last 5)" in labels
    assert "solved (475)" in labels
    solved = [ln for ln in ret_ax.get_lines() if list(ln.get_ydata()) == [475, 475]]
    assert solved, "CartPole-v1's reward_threshold (475) is drawn"
    raw = ret_ax.get_lines()[0]
    assert len(raw.get_ydata()) == sum(1 for r in gym_records() if "episodic_return" in r)


def test_unknown_env_has_no_solved_line(tmp_path: Path) -> None:
    run = write_run(tmp_path / "gym", "NoSuchEnv-v9", gym_records(6))
    labels = [ln.get_label() for ln in run_figure(run).axes[0].get_lines()]
    assert not any(label.startswith("solved") for label in labels)


def test_trailing_mean() -> None:
    assert trailing_mean([1, 2, 3, 4], 2) == [1, 1.5, 2.5, 3.5]
    assert trailing_mean([4, 2], 10) == [4, 3]


def test_clip_figure(tmp_path: Path) -> None:
    out = tmp_path / "clip.png"
    result = runner.invoke(app, ["plot", "--clip", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert_png(out)
    fig = clip_figure(0.2)
    names = titles(fig)
    assert "ε = 0.2" in names[0] and "A = +1" in names[1] and "A = −1" in names[2]
    # A = +1: PPO's objective is flat at 1 + eps above the band
    ppo_line = next(ln for ln in fig.axes[1].get_lines() if ln.get_label().startswith("min"))
    xs, ys = ppo_line.get_xdata(), ppo_line.get_ydata()
    assert max(ys) == pytest.approx(1.2) and ys[list(xs).index(max(xs))] == pytest.approx(1.2)


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--run", "does-not-exist"], 1, "not found"),
        (["--clip", "--out", "x.jpg"], 2, "image type"),
        (["--clip", "--clip-coef", "1.5"], 2, "clip-coef"),
        (["--clip", "--run", "."], 2, "no run"),
    ],
)
def test_plot_errors(args: list[str], code: int, words: str) -> None:
    result = runner.invoke(app, ["plot", *args])
    assert result.exit_code == code
    assert words in result.stderr and len(result.stderr.splitlines()) == 1


def test_empty_metrics_is_a_run_error(tmp_path: Path) -> None:
    run = write_run(tmp_path / "empty", "text-qa", [])
    result = runner.invoke(app, ["plot", "--run", str(run)])
    assert result.exit_code == 1 and "no records" in result.stderr


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_plot_replaces_its_own_figure_but_never_a_users_file(tmp_path: Path, suffix: str) -> None:
    run = write_run(tmp_path / "run", "text-qa", text_records())
    ours = tmp_path / f"curves{suffix}"
    for _ in range(2):  # re-plotting to the same path is what a user does while training
        result = runner.invoke(app, ["plot", "--run", str(run), "--out", str(ours)])
        assert result.exit_code == 0, result.stderr
    mine = tmp_path / f"mine{suffix}"
    mine.write_bytes(b"the user's own picture")
    for args in (["--run", str(run)], ["--clip"]):
        result = runner.invoke(app, ["plot", *args, "--out", str(mine)])
        assert result.exit_code == 1
        assert "already exists and ppoqa did not draw it" in result.stderr
        assert "Traceback" not in result.stderr
    assert mine.read_bytes() == b"the user's own picture"
    # the default output inside the run folder obeys the same rule
    (run / "training.png").write_bytes(b"a user's file in the run folder")
    assert runner.invoke(app, ["plot", "--run", str(run)]).exit_code == 1
    assert (run / "training.png").read_bytes() == b"a user's file in the run folder"
