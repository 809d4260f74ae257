"""Issue 10: what makes a user's own dataset learnable: the per-step answer mask and the
episodes spent on the questions still answered wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ppo_cli.config import Config
from ppo_cli.core.session import resume_config
from ppo_cli.core.trainer import Callbacks, train
from ppo_cli.textqa.curriculum import focused_questions
from ppo_cli.textqa.data import END_ID, Vocabulary, parse_dataset
from ppo_cli.textqa.env import QATask, TextQAVecEnv
from ppo_cli.textqa.policies import build_policy
from ppo_cli.textqa.rollout import collect_text_episodes
from ppo_cli.textqa.task import answer_positions
from tests.test_resume import BASE, metrics, summary

TWO_WORDS = """
pairs:
  - {question: capital of Argentina, answer: Buenos Aires}
  - {question: capital of India, answer: New Delhi}
  - {question: capital of France, answer: Paris}
  - {question: capital of Peru, answer: Lima}
"""


def _task() -> QATask:
    ds = parse_dataset(TWO_WORDS, "two.yaml")
    return QATask(ds, Vocabulary.from_dataset(ds))


def test_answer_positions_list_each_steps_words_and_where_answers_end() -> None:
    task = _task()
    ids = task.vocab.encode
    steps = answer_positions(task)
    first = set(ids(["Buenos", "New", "Paris", "Lima"])[0])
    assert set(steps[0]) == first  # never <END> first: no empty answer
    assert set(steps[1]) == set(ids(["Aires", "Delhi"])[0]) | {END_ID}
    assert steps[2] == [END_ID]


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_the_position_mask_holds_in_rollouts_and_in_the_update(kind: str) -> None:
    task = _task()
    steps = answer_positions(task)
    answer_ids = sorted({int(t) for t in task.targets[task.target_valid]})
    spec = {
        "kind": kind,
        "vocab_size": len(task.vocab),
        "hidden_size": 16,
        "answer_vocab": answer_ids,
        "answer_positions": steps,
    }
    torch.manual_seed(0)
    policy = build_policy(spec)
    ro = collect_text_episodes(policy, TextQAVecEnv(task), torch.arange(4).repeat(50))
    for k in range(ro.actions.shape[1]):
        taken = set(ro.actions[:, k][ro.mask[:, k]].tolist())
        assert taken <= set(steps[k]), k
    assert ((ro.actions[:, 1] == END_ID) | ~ro.mask[:, 1]).sum() < ro.mask[:, 1].sum()
    with torch.no_grad():  # the update scores the same restricted distribution
        logprob, _, _ = policy.evaluate(ro.tokens, ro.actions)
    assert torch.allclose(logprob[ro.mask], ro.logprobs[ro.mask], atol=1e-5)
    assert build_policy(policy.spec()).spec()["answer_positions"] == steps  # in the checkpoint


def test_focused_batches_give_the_wrong_questions_their_share_and_keep_the_others() -> None:
    torch.manual_seed(0)
    correct = torch.tensor([True] * 28 + [False] * 2)
    idx = focused_questions(correct, 240, 0.5)
    counts = torch.bincount(idx, minlength=30)
    assert idx.numel() == 240
    assert counts[28:].sum() == 120 and abs(int(counts[28]) - int(counts[29])) <= 1
    assert (counts[:28] >= 4).all()  # the solved questions are still rehearsed
    # nothing to focus on: every question equally often (up to one)
    for flags in (torch.ones(30, dtype=torch.bool), torch.zeros(30, dtype=torch.bool)):
        counts = torch.bincount(focused_questions(flags, 240, 0.5), minlength=30)
        assert int(counts.max() - counts.min()) <= 1
    # a share below the balanced one never takes episodes away from the wrong questions
    counts = torch.bincount(focused_questions(torch.arange(30) < 10, 240, 0.1), minlength=30)
    assert counts[10:].sum() >= 160


def test_a_focused_run_resumes_to_the_same_metrics(tmp_path: Path) -> None:
    """The focus reads the last greedy answers, which the checkpoint keeps."""
    base = {**BASE, "focus_unsolved": 0.5, "answer_positions": True}
    short, long = tmp_path / "short", tmp_path / "long"
    train(Config(**{**base, "iterations": 3}), short, Callbacks())
    result = train(resume_config(short, {"iterations": 6}), short, Callbacks(), resume=True)
    ref = train(Config(**{**base, "iterations": 6}), long, Callbacks())
    assert metrics(short) == metrics(long)
    assert summary(result) == summary(ref)


def test_the_lstm_reads_each_distinct_prompt_once_with_the_same_numbers() -> None:
    """encode_decisions shares the prompt's LSTM pass among a question's episodes; the hidden
    states (and their gradients) must be those of reading every sequence whole."""
    task = _task()
    torch.manual_seed(0)
    policy = build_policy({"kind": "lstm", "vocab_size": len(task.vocab), "hidden_size": 16})
    ro = collect_text_episodes(policy, TextQAVecEnv(task), torch.arange(4).repeat(8))
    steps = ro.actions.shape[1]
    whole = policy.encode(ro.tokens)[:, -steps:]
    shared = policy.encode_decisions(ro.tokens, steps)
    assert torch.allclose(whole, shared, atol=1e-6)
    (g_whole,) = torch.autograd.grad(whole.square().sum(), policy.lstm.weight_hh_l0)
    (g_shared,) = torch.autograd.grad(shared.square().sum(), policy.lstm.weight_hh_l0)
    assert torch.allclose(g_whole, g_shared, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_the_allowed_columns_head_is_the_full_masked_distribution(kind: str) -> None:
    """act/evaluate compute logits for the allowed ids only and the policy head on real steps
    only; log-probs, entropies and gradients must be those of the full masked distribution."""
    task = _task()
    answer_ids = sorted({int(t) for t in task.targets[task.target_valid]})
    spec = {"kind": kind, "vocab_size": len(task.vocab), "hidden_size": 16,
            "answer_vocab": answer_ids, "answer_positions": answer_positions(task)}  # fmt: skip
    torch.manual_seed(0)
    policy = build_policy(spec)
    ro = collect_text_episodes(policy, TextQAVecEnv(task), torch.arange(4).repeat(8))
    logprob, entropy, value = policy.evaluate(ro.tokens, ro.actions)
    full_logits, full_value = policy.logits_values(ro.tokens, ro.actions.shape[1])  # [B, T, V]
    full = torch.distributions.Categorical(logits=full_logits)
    m = ro.mask
    assert torch.allclose(logprob[m], full.log_prob(ro.actions)[m], atol=1e-5)
    assert torch.allclose(logprob[m], ro.logprobs[m], atol=1e-5)  # what the rollout recorded
    assert torch.allclose(entropy[m], full.entropy()[m], atol=1e-5)
    assert torch.equal(value, full_value)
    assert not logprob[~m].any() and not entropy[~m].any()  # padding: 0, masked by every loss
    weight = policy.actor.weight
    (g_ours,) = torch.autograd.grad((logprob[m] + 0.1 * entropy[m]).sum(), weight)
    ref = (full.log_prob(ro.actions)[m] + 0.1 * full.entropy()[m]).sum()
    (g_full,) = torch.autograd.grad(ref, weight)
    assert torch.allclose(g_ours, g_full, atol=1e-5)


def test_sample_rows_draws_with_the_given_probabilities_and_never_a_zero() -> None:
    from ppo_cli.textqa.policies import sample_rows

    torch.manual_seed(0)
    probs = torch.tensor([[0.0, 0.2, 0.0, 0.8, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]])
    draws = torch.stack([sample_rows(probs) for _ in range(20_000)])  # [n, 2]
    assert set(draws[:, 0].tolist()) == {1, 3} and set(draws[:, 1].tolist()) == {4}
    assert abs(float((draws[:, 0] == 3).float().mean()) - 0.8) < 0.01
    # a row whose float total rounds below 1 still never yields a zero-probability column
    edge = torch.tensor([[0.3, 0.7 - 3e-8, 0.0]])
    with torch.random.fork_rng():
        for _ in range(2000):
            assert int(sample_rows(edge)) in (0, 1)
