"""The text-QA environment: gymnasium contract, the seed's rewards, single vs batched."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import ppo_cli.textqa.gym_env  # noqa: F401  (registers ppoqa/TextQA-v0)
from ppo_cli.config import Config
from ppo_cli.errors import DatasetError
from ppo_cli.textqa.data import END_ID, load_dataset
from ppo_cli.textqa.env import QATask, RewardSpec, TextQAVecEnv
from ppo_cli.textqa.evaluate import reward_spec
from ppo_cli.textqa.gym_env import TextQAEnv

from .conftest import EXAMPLES

TWO_WORDS = """\
max_answer_tokens: 3
pairs:
  - question: What is the capital of Argentina?
    answer: Buenos Aires
  - question: What is 2+2?
    answer: 4
"""


def make(**kwargs) -> TextQAEnv:
    return gym.make("ppoqa/TextQA-v0", **kwargs).unwrapped


def play(env: TextQAEnv, question: str, words: list[str]) -> tuple[list[float], list[bool], dict]:
    """Reset on `question`, then step the given words ('<END>' included); rewards, ends, info."""
    questions = [p.question for p in env.task.dataset.pairs]
    env.reset(seed=0, options={"question_index": questions.index(question)})
    rewards, ends, info = [], [], {}
    for word in words:
        action = env.task.vocab.encode([word])[0][0]
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        ends.append(terminated)
        assert not truncated
        if terminated:
            break
    return rewards, ends, info


# --- gymnasium contract -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs", [{}, {"render_mode": "ansi"}, {"dataset": str(EXAMPLES / "capitals.yaml")}]
)
def test_passes_gymnasium_env_checker(kwargs: dict) -> None:
    env = make(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(env)


def test_make_uses_the_builtin_dataset_by_default() -> None:
    env = make()
    assert env.task.num_questions == 5
    _, info = env.reset(seed=0, options={"question_index": 1})
    assert info == {"question": "What is 2+2?", "target": "4"}


def test_make_with_dataset_path(write_dataset) -> None:
    env = make(dataset=str(write_dataset(TWO_WORDS)))
    assert env.task.num_questions == 2
    assert env.task.max_steps == 4  # the file's max_answer_tokens (3) plus <END>
    obs, info = env.reset(seed=0, options={"question_index": 0})
    assert info["target"] == "Buenos Aires"
    assert env.observation_space.contains(obs)
    assert env.action_space.n == len(env.task.vocab)


def test_make_with_a_bad_dataset_raises_a_dataset_error(write_dataset) -> None:
    with pytest.raises(DatasetError, match="'pairs' is empty"):
        make(dataset=str(write_dataset("pairs: []\n")))


def test_reset_with_a_seed_is_reproducible() -> None:
    env = make()
    firsts = [env.reset(seed=s)[1]["question"] for s in range(8)]
    again = [env.reset(seed=s)[1]["question"] for s in range(8)]
    assert firsts == again
    assert len(set(firsts)) > 1  # seeds pick different questions


def test_observation_holds_the_question_and_the_answer_so_far() -> None:
    env = make(render_mode="ansi")
    env.reset(seed=0, options={"question_index": 0})
    assert env.render() == "What is the capital of France ? <START>"
    env.step(env.task.vocab.encode(["Paris"])[0][0])
    assert env.render() == "What is the capital of France ? <START> Paris"


def test_step_after_the_end_is_refused() -> None:
    env = make()
    env.reset(seed=0)
    env.step(END_ID)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(END_ID)


# --- the walkthrough's rewards (reward: seed, its old name) ---------------------------------


def test_exact_answer_earns_ten_after_one_step_penalty() -> None:
    rewards, ends, info = play(make(reward="seed"), "What is 2+2?", ["4", "<END>"])
    assert rewards == pytest.approx([-0.1, 10.0])
    assert ends == [False, True]
    assert info == {"answer": "4", "correct": True, "overlap": 1, "credit": 1.0}


def test_wrong_answer_earns_minus_two() -> None:
    rewards, ends, info = play(make(), "What is 2+2?", ["Paris", "<END>"])
    assert rewards == pytest.approx([-0.1, -2.0])
    assert info["correct"] is False and info["overlap"] == 0


def test_empty_answer_ends_at_once_with_no_overlap() -> None:
    rewards, ends, info = play(make(), "What is 2+2?", ["<END>"])
    assert rewards == pytest.approx([-2.0])
    assert ends == [True]
    assert info["answer"] == ""


@pytest.mark.parametrize(
    ("words", "final", "overlap"),
    [
        (["Buenos", "<END>"], 0.0, 1),  # 2*1 - 2
        (["Aires", "Buenos", "<END>"], 2.0, 2),  # both words, wrong order: not exact
        (["Buenos", "Buenos", "<END>"], 0.0, 1),  # a repeated word counts once
        (["Buenos", "Aires", "<END>"], 10.0, 2),  # exact
    ],
)
def test_partial_credit_is_two_per_shared_word_minus_two(
    write_dataset, words: list[str], final: float, overlap: int
) -> None:
    env = make(dataset=str(write_dataset(TWO_WORDS)), reward="seed")
    rewards, _, info = play(env, "What is the capital of Argentina?", words)
    assert rewards == pytest.approx([-0.1] * (len(words) - 1) + [final])
    assert info["overlap"] == overlap


def test_episode_ends_at_the_length_limit_of_max_answer_tokens_plus_one() -> None:
    env = make(reward="seed")
    rewards, ends, info = play(env, "What is 2+2?", ["4"] * 10)
    assert len(rewards) == 5  # 4 answer tokens + the closing step
    assert ends == [False] * 4 + [True]
    assert rewards[:4] == pytest.approx([-0.1] * 4)
    assert rewards[4] == pytest.approx(0.0)  # one shared word: 2*1 - 2
    assert info["answer"] == "4 4 4 4"  # never longer than the limit


def test_the_length_limit_follows_max_answer_tokens() -> None:
    env = make(max_answer_tokens=2)
    rewards, ends, info = play(env, "What is 2+2?", ["blue"] * 10)
    assert len(rewards) == 3
    assert info["answer"] == "blue blue"


# --- configurable rewards -----------------------------------------------------------------


def test_rewards_are_configurable_in_make() -> None:
    env = make(rewards={"correct": 1.0, "step_penalty": 0.0, "wrong": -1.0, "overlap": 0.5})
    assert play(env, "What is 2+2?", ["4", "<END>"])[0] == pytest.approx([0.0, 1.0])
    assert play(env, "What is 2+2?", ["blue", "<END>"])[0] == pytest.approx([0.0, -1.0])


def test_rewards_are_configurable_in_the_dataset_and_overridden_by_config(write_dataset) -> None:
    path = write_dataset("rewards: {correct: 3, step_penalty: 0.5}\n" + TWO_WORDS)
    env = make(dataset=str(path))
    assert play(env, "What is 2+2?", ["4", "<END>"])[0] == pytest.approx([-0.5, 3.0])
    data = load_dataset(path)
    # dataset < config: a run's --reward-correct beats the file's value
    spec = reward_spec(Config(reward_correct=7.0), data)
    assert spec == RewardSpec(correct=7.0, overlap=2.0, wrong=-2.0, step_penalty=0.5)
    assert reward_spec(Config(), load_dataset(None)) == RewardSpec(10.0, 2.0, -2.0, 0.1)


def test_a_limit_shorter_than_an_answer_is_refused(write_dataset) -> None:
    with pytest.raises(DatasetError, match=r"pair 0: answer 'Buenos Aires' has 2 tokens"):
        make(dataset=str(write_dataset(TWO_WORDS)), max_answer_tokens=1)


# --- the batched env gives the single env's rewards ---------------------------------------


def test_batched_env_matches_the_single_env_for_the_same_actions(write_dataset) -> None:
    env = make(dataset=str(write_dataset(TWO_WORDS)))
    task: QATask = env.task
    gen = torch.Generator().manual_seed(0)
    n = 64
    question_idx = torch.randint(task.num_questions, (n,), generator=gen)
    # Mostly answer words and <END>, so exact, partial and wrong answers all occur.
    words = ["Buenos", "Aires", "4", "<END>", "<END>", "What"]
    choice = torch.tensor([task.vocab.encode([w])[0][0] for w in words])
    actions = choice[torch.randint(len(words), (n, task.max_steps), generator=gen)]
    # Make a few rows exactly right.
    for row in range(4):
        target = task.vocab.encode(task.dataset.pairs[int(question_idx[row])].answer_tokens)[0]
        actions[row, : len(target) + 1] = torch.tensor([*target, END_ID])

    venv = TextQAVecEnv(task)
    venv.reset(question_idx)
    batched = torch.zeros(n, task.max_steps)
    batched_end = torch.zeros(n, dtype=torch.long)
    for t in range(task.max_steps):
        reward, ended = venv.step(actions[:, t])
        batched[:, t] = reward
        batched_end[ended] = t + 1
    assert bool(venv.done.all())

    finals = set()
    for i in range(n):
        env.reset(seed=0, options={"question_index": int(question_idx[i])})
        single = []
        for t in range(task.max_steps):
            _, reward, terminated, _, info = env.step(int(actions[i, t]))
            single.append(reward)
            if terminated:
                break
        assert len(single) == int(batched_end[i]), i
        np.testing.assert_allclose(single, batched[i, : len(single)].numpy(), rtol=0, atol=1e-6)
        assert batched[i, len(single) :].abs().sum() == 0  # finished rows get nothing
        assert info["correct"] == bool(venv.exact[i])
        finals.add(single[-1])
    assert {10.0, -2.0} <= {round(f, 4) for f in finals}  # the check covered both outcomes
