"""Issue 6 extensions: Transformer policy, presets, curriculum, TensorBoard, bigger datasets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ppo_cli.cli import app
from ppo_cli.config import Config, resolve, validate
from ppo_cli.core.trainer import train
from ppo_cli.errors import ConfigError
from ppo_cli.presets import POLICY_DEFAULTS, PRESETS
from ppo_cli.textqa.curriculum import Curriculum
from ppo_cli.textqa.data import END_ID, START_ID, Vocabulary, load_dataset, tokenize
from ppo_cli.textqa.env import QATask, TextQAVecEnv
from ppo_cli.textqa.policies import TransformerActorCritic, build_policy
from ppo_cli.textqa.rollout import collect_text_episodes

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
runner = CliRunner()


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# ---------------------------------------------------------------- Transformer policy


@pytest.fixture
def transformer() -> TransformerActorCritic:
    torch.manual_seed(0)
    return TransformerActorCritic(vocab_size=20, hidden_size=32).eval()


def test_transformer_is_causal(transformer: TransformerActorCritic) -> None:
    """Changing later tokens leaves every earlier position's hidden state as it was."""
    x = torch.tensor([[0, 0, 5, 6, 7, START_ID, 9, 10]])
    y = x.clone()
    y[0, 6:] = torch.tensor([11, 12])
    with torch.no_grad():
        hx, hy = transformer.encode(x), transformer.encode(y)
    assert torch.allclose(hx[:, :6], hy[:, :6], atol=1e-6)
    assert not torch.allclose(hx[:, 6:], hy[:, 6:])


def test_transformer_ignores_left_padding(transformer: TransformerActorCritic) -> None:
    """The same question with more left padding gets the same logits and values: `ask` with
    one short question answers as the same question did in a training batch."""
    short = torch.tensor([[0, 5, 6, 7, START_ID, 9]])
    long = torch.tensor([[0, 0, 0, 0, 0, 5, 6, 7, START_ID, 9]])
    with torch.no_grad():
        for steps in (None, 2):
            ls, vs = transformer.logits_values(short, steps)
            ll, vl = transformer.logits_values(long, steps)
            assert torch.allclose(ls, ll, atol=1e-5)
            assert torch.allclose(vs, vl, atol=1e-5)


def test_transformer_scores_a_whole_episode_like_step_by_step() -> None:
    """evaluate() over the generated episode in one pass = the log-probs recorded while acting."""
    ds = load_dataset(None)
    vocab = Vocabulary.from_dataset(ds)
    task = QATask(ds, vocab)
    torch.manual_seed(1)
    policy = TransformerActorCritic(len(vocab), 32)
    ro = collect_text_episodes(policy, TextQAVecEnv(task), torch.arange(5).repeat(3))
    with torch.no_grad():
        logprob, _, value = policy.evaluate(ro.tokens, ro.actions)
    m = ro.mask
    assert torch.allclose(logprob[m], ro.logprobs[m], atol=1e-5)
    assert torch.allclose(value[m], ro.values[m], atol=1e-5)


def test_transformer_never_emits_banned_tokens(transformer: TransformerActorCritic) -> None:
    obs = torch.tensor([[5, 6, START_ID]] * 64)
    action, _, _ = transformer.act(obs)
    assert set(action.tolist()).isdisjoint({0, START_ID, 3})


def test_transformer_checkpoint_spec_round_trip(transformer: TransformerActorCritic) -> None:
    rebuilt = build_policy(transformer.spec())
    rebuilt.load_state_dict(transformer.state_dict())
    rebuilt.eval()
    obs = torch.tensor([[5, 6, START_ID]])
    with torch.no_grad():
        a, b = rebuilt.logits_values(obs, None)[0], transformer.logits_values(obs, None)[0]
    assert torch.allclose(a, b, atol=1e-6)


def test_transformer_learns_builtin_set(tmp_path: Path) -> None:
    cfg = validate(resolve({"policy": "transformer", "seed": 7}))
    result = train(cfg, tmp_path / "run")
    assert result.final_accuracy == 1.0
    assert result.stopped_early


def test_ask_answers_a_short_question_alone_like_in_training(tmp_path: Path) -> None:
    """A question asked alone has less left padding than in training; the answer must match."""
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--quiet", "--json", "--run-dir", str(run), "--seed", "1"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["final_accuracy"] == 1.0
    for q, a in (("What is 2+2?", "4"), ("What color is the sky?", "blue")):
        res = runner.invoke(app, ["ask", "--run", str(run), q])
        assert res.exit_code == 0
        assert res.stdout.strip() == a


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_answer_vocab_generates_only_answer_words_and_never_an_empty_answer(kind: str) -> None:
    ds = load_dataset(None)
    vocab = Vocabulary.from_dataset(ds)
    task = QATask(ds, vocab)
    answer_ids = sorted({int(t) for t in task.targets[task.target_valid]})
    torch.manual_seed(0)
    policy = build_policy(
        {"kind": kind, "vocab_size": len(vocab), "hidden_size": 16, "answer_vocab": answer_ids}
    )
    ro = collect_text_episodes(policy, TextQAVecEnv(task), torch.arange(5).repeat(40))
    assert set(ro.actions[ro.mask].tolist()) <= set(answer_ids) | {END_ID}
    assert (ro.answer_len >= 1).all()  # <END> is never the first token
    with torch.no_grad():  # the update scores the same restricted distribution
        logprob, _, _ = policy.evaluate(ro.tokens, ro.actions)
    assert torch.allclose(logprob[ro.mask], ro.logprobs[ro.mask], atol=1e-5)
    rebuilt = build_policy(policy.spec())  # the restriction travels in the checkpoint spec
    assert rebuilt.spec()["answer_vocab"] == answer_ids


# ---------------------------------------------------------------- presets and policy defaults


def test_lstm_defaults_are_the_config_defaults() -> None:
    assert resolve({}) == Config()
    assert resolve(preset="balanced") == Config()


def test_transformer_gets_its_policy_defaults_and_flags_still_win() -> None:
    cfg = resolve({"policy": "transformer"})
    for key, value in POLICY_DEFAULTS["transformer"].items():
        assert getattr(cfg, key) == value
    assert resolve({"policy": "transformer", "learning_rate": 0.01}).learning_rate == 0.01
    assert resolve({"policy": "transformer", "target_kl": None}).target_kl is None


def test_order_defaults_preset_config_file_flags(tmp_path: Path) -> None:
    quality = PRESETS["quality"]["all"]
    assert resolve({}, preset="quality").num_episodes == quality["num_episodes"]
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("num_episodes: 48\nupdate_epochs: 3\n", encoding="utf-8")
    cfg = resolve({}, config_file=cfg_file, preset="quality")
    assert cfg.num_episodes == 48 and cfg.update_epochs == 3  # file beats preset
    assert cfg.iterations == quality["iterations"]  # preset beats defaults
    cfg = resolve({"num_episodes": 16}, config_file=cfg_file, preset="quality")
    assert cfg.num_episodes == 16  # flag beats file
    # a policy's own preset refinements beat its policy defaults
    tf = resolve({"policy": "transformer"}, preset="fast")
    assert tf.learning_rate == PRESETS["fast"]["transformer"]["learning_rate"]


def test_policy_chosen_in_config_file_selects_policy_defaults(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("policy: transformer\n", encoding="utf-8")
    cfg = resolve({}, config_file=cfg_file)
    assert cfg.learning_rate == POLICY_DEFAULTS["transformer"]["learning_rate"]


def test_unknown_preset_is_a_usage_error() -> None:
    res = runner.invoke(app, ["train", "--preset", "turbo"])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1
    assert "--preset must be one of fast, balanced, quality" in res.stderr


def test_preset_on_a_gym_env_is_refused() -> None:
    with pytest.raises(ConfigError, match="text QA"):
        resolve({"env": "CartPole-v1"}, preset="fast")


def test_cli_preset_is_written_into_the_run_config(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", "--quiet", "--json", "--preset", "fast", "--iterations", "2"]
    res = runner.invoke(app, [*args, "--run-dir", str(run)])
    assert res.exit_code == 0, res.stderr
    text = (run / "config.yaml").read_text(encoding="utf-8")
    assert f"learning_rate: {PRESETS['fast']['all']['learning_rate']}" in text
    assert "iterations: 2" in text


# ---------------------------------------------------------------- curriculum


def test_curriculum_adds_levels_in_order_when_earned() -> None:
    cur = Curriculum([0, 0, 1, 3], threshold=0.5)
    assert cur.active.tolist() == [0, 1] and not cur.complete
    rec = cur.observe([False, False, True, True])  # active accuracy 0: stay
    assert rec["active_accuracy"] == 0.0 and "curriculum_advanced_to" not in rec
    rec = cur.observe([True, False, False, False])  # 1/2 on level 0: add level 1
    assert rec["curriculum_advanced_to"] == 1 and cur.active.tolist() == [0, 1, 2]
    rec = cur.observe([True, True, True, False])
    assert rec["curriculum_advanced_to"] == 3 and cur.complete
    assert "curriculum_advanced_to" not in cur.observe([True] * 4)


def test_curriculum_samples_only_active_questions_evenly() -> None:
    cur = Curriculum([0, 1, 0, 1, 0], threshold=0.8)
    q = cur.sample(30)
    assert q.shape == (30,)
    assert torch.bincount(q, minlength=5).tolist() == [10, 0, 10, 0, 10]


def test_curriculum_run_trains_on_active_level_and_delays_early_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an unreachable threshold only level 0 is trained, and even a target accuracy of 0
    does not stop the run: early stop counts only once all levels are active."""
    import ppo_cli.textqa.task as trainer_mod

    seen: list[torch.Tensor] = []
    real = trainer_mod.collect_text_episodes

    def spy(policy, venv, question_idx, *a, **k):  # type: ignore[no-untyped-def]
        seen.append(question_idx.clone())
        return real(policy, venv, question_idx, *a, **k)

    monkeypatch.setattr(trainer_mod, "collect_text_episodes", spy)
    ds = load_dataset(EXAMPLES / "curriculum.yaml")
    level0 = {i for i, p in enumerate(ds.pairs) if p.level == 0}
    base = {"dataset": str(EXAMPLES / "curriculum.yaml"), "iterations": 3, "num_episodes": 16}
    cfg = validate(
        resolve({**base, "curriculum": True, "curriculum_threshold": 1.0, "target_accuracy": 0.0})
    )
    result = train(cfg, tmp_path / "cur")
    assert result.iterations == 3 and not result.stopped_early
    assert seen and all(set(q.tolist()) <= level0 for q in seen)
    recs = _records(tmp_path / "cur")
    assert all(r["curriculum_stage"] == 1 and "active_accuracy" in r for r in recs)
    assert all(r["active_questions"] == len(level0) for r in recs)
    # without a curriculum the same target stops at the first evaluation
    plain = train(validate(resolve({**base, "target_accuracy": 0.0})), tmp_path / "plain")
    assert plain.iterations == 1


def test_curriculum_with_one_level_is_a_plain_run(tmp_path: Path) -> None:
    cfg = validate(resolve({"curriculum": True, "iterations": 2, "target_accuracy": None}))
    train(cfg, tmp_path / "r")
    recs = _records(tmp_path / "r")
    assert all(r["curriculum_stages"] == 1 and r["active_questions"] == 5 for r in recs)


def test_curriculum_flags_reach_the_config(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "train", "--quiet", "--json", "--iterations", "1", "--curriculum",
            "--curriculum-threshold", "0.6", "--run-dir", str(tmp_path / "r"),
            "--dataset", str(EXAMPLES / "curriculum.yaml"),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    text = (tmp_path / "r" / "config.yaml").read_text(encoding="utf-8")
    assert "curriculum: true" in text and "curriculum_threshold: 0.6" in text
    bad = runner.invoke(app, ["train", "--curriculum-threshold", "1.5"])
    assert bad.exit_code == 2 and "--curriculum-threshold" in bad.stderr


# ---------------------------------------------------------------- TensorBoard


def test_text_record_maps_to_cleanrl_names() -> None:
    from ppo_cli.core.tensorboard import global_step, scalars_from_record

    rec = {
        "iteration": 3, "steps": 600, "mean_reward": 1.5, "mean_length": 2.0,
        "learning_rate": 0.005, "loss": 0.1, "policy_loss": -0.2, "value_loss": 0.3,
        "entropy": 1.1, "approx_kl": 0.01, "clipfrac": 0.1, "explained_variance": 0.5,
        "eval_accuracy": 0.8, "epoch_losses": [0.1, 0.2], "wall_seconds": 2.0,
    }  # fmt: skip
    tags = scalars_from_record(rec)
    assert global_step(rec) == 600
    assert tags["charts/episodic_return"] == 1.5 == tags["charts/mean_reward"]
    assert tags["charts/SPS"] == 300.0
    assert tags["charts/eval_accuracy"] == 0.8
    for name in ("value_loss", "policy_loss", "entropy", "approx_kl", "clipfrac"):
        assert tags[f"losses/{name}"] == rec[name]
    assert tags["losses/explained_variance"] == 0.5
    assert tags["charts/learning_rate"] == 0.005
    assert not any("epoch_losses" in t for t in tags)


def test_gym_record_maps_to_cleanrl_names() -> None:
    from ppo_cli.core.tensorboard import global_step, scalars_from_record

    rec = {"iteration": 2, "global_step": 2048, "sps": 900.0, "approx_kl": 0.02}
    tags = scalars_from_record(rec)
    assert global_step(rec) == 2048
    assert tags == {"charts/SPS": 900.0, "losses/approx_kl": 0.02}  # no return: none written
    rec["episodic_return"] = 21.0
    assert scalars_from_record(rec)["charts/episodic_return"] == 21.0


class _FakeWriter:
    instances: list[_FakeWriter] = []

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.scalars: list[tuple[str, float, int]] = []
        self.closed = False
        _FakeWriter.instances.append(self)

    def add_text(self, tag: str, text: str) -> None: ...

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def flush(self) -> None: ...

    def close(self) -> None:
        self.closed = True


def test_writer_gets_every_iteration_and_forwards_other_hooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ppo_cli.core.tensorboard as tb
    from ppo_cli.core.trainer import Callbacks

    monkeypatch.setattr(tb, "summary_writer_class", lambda: _FakeWriter)
    _FakeWriter.instances.clear()

    class Inner(Callbacks):
        def __init__(self) -> None:
            self.iterations: list[int] = []
            self.traces = 0

        def on_iteration(self, record: dict) -> None:
            self.iterations.append(record["iteration"])

        def on_trace(self, *args: object) -> None:  # a hook another module may add
            self.traces += 1

    inner = Inner()
    cfg = validate(resolve({"iterations": 3, "target_accuracy": None, "tensorboard": True}))
    train(cfg, tmp_path / "run", inner)
    (writer,) = _FakeWriter.instances
    assert writer.closed and Path(writer.log_dir) == tmp_path / "run" / "tensorboard"
    assert inner.iterations == [1, 2, 3]
    returns = [(v, s) for t, v, s in writer.scalars if t == "charts/episodic_return"]
    recs = _records(tmp_path / "run")
    assert returns == [(r["mean_reward"], r["steps"]) for r in recs]
    tb.TensorBoardCallbacks(inner).on_trace("x")
    assert inner.traces == 1


def test_missing_tensorboard_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import -> ImportError
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--tensorboard", "--iterations", "1", "--run-dir", str(run)])
    assert res.exit_code == 1
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "--tensorboard needs the 'tensorboard' package" in res.stderr
    assert "pip install 'ppoqa[tensorboard]'" in res.stderr
    assert not (run / "metrics.jsonl").exists()  # stopped before any training


def test_tensorboard_event_file_has_cleanrl_tags(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    args = ["train", "--quiet", "--tensorboard", "--iterations", "2", "--no-early-stop"]
    res = runner.invoke(app, [*args, "--run-dir", str(run)])
    assert res.exit_code == 0, res.stderr
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in (
        "charts/episodic_return", "charts/learning_rate", "charts/SPS", "charts/eval_accuracy",
        "charts/mean_reward", "losses/value_loss", "losses/policy_loss", "losses/entropy",
        "losses/approx_kl", "losses/clipfrac", "losses/explained_variance",
    ):  # fmt: skip
        assert tag in tags
    steps = [e.step for e in acc.Scalars("losses/approx_kl")]
    assert steps == [r["steps"] for r in _records(run)]


# ---------------------------------------------------------------- example datasets


def test_big_example_dataset_is_varied_and_valid() -> None:
    ds = load_dataset(EXAMPLES / "general_knowledge.yaml")
    assert len(ds.pairs) >= 100
    assert len({p.question for p in ds.pairs}) == len(ds.pairs)
    assert max(len(tokenize(p.answer)) for p in ds.pairs) <= 4
    assert len(Vocabulary.from_dataset(ds)) > 300


def test_curriculum_example_has_levels_built_on_easier_answers() -> None:
    ds = load_dataset(EXAMPLES / "curriculum.yaml")
    assert ds.levels == [0, 1, 2]
    easy_words = {p.answer for p in ds.pairs if p.level == 0}
    for p in ds.pairs:
        assert len(tokenize(p.answer)) == p.level + 1
        assert set(tokenize(p.answer)) <= easy_words
