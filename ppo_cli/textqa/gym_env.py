"""The text-QA task with gymnasium's single-environment API (registered as ppoqa/TextQA-v0).

It wraps the batched environment with one row, so both always give the same rewards.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ppo_cli.textqa.data import PAD_ID, Vocabulary, load_dataset
from ppo_cli.textqa.env import QATask, RewardSpec, TextQAVecEnv
from ppo_cli.textqa.rewards import DEFAULT_REWARD


class TextQAEnv(gym.Env):
    """Observation: the token window (left-padded question, <START>, answer so far, padding).
    Action: the next token id. Reward: the named reward. Ends at <END> or the length limit."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        dataset: str | None = None,
        max_answer_tokens: int | None = None,
        rewards: dict[str, float] | None = None,
        render_mode: str | None = None,
        reward: str | None = None,
    ) -> None:
        data = load_dataset(dataset)
        vocab = Vocabulary.from_dataset(data)
        name = reward or data.reward or DEFAULT_REWARD
        spec = RewardSpec(**(data.rewards | (rewards or {})), name=name)
        spec.definition  # noqa: B018 - an unknown name fails here, not at the first step
        self.task = QATask(data, vocab, spec, max_answer_tokens)
        self._venv = TextQAVecEnv(self.task)
        self.window = self.task.prompt_len + self.task.max_steps - 1
        self.observation_space = gym.spaces.Box(
            low=0, high=len(vocab) - 1, shape=(self.window,), dtype=np.int64
        )
        self.action_space = gym.spaces.Discrete(len(vocab))
        self.render_mode = render_mode
        self._obs = np.zeros(self.window, dtype=np.int64)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "question_index" in options:
            q = int(options["question_index"])
        else:
            q = int(self.np_random.integers(self.task.num_questions))
        self._obs = np.full(self.window, PAD_ID, dtype=np.int64)
        self._obs[: self.task.prompt_len] = self._venv.reset(torch.tensor([q]))[0].numpy()
        pair = self.task.dataset.pairs[q]
        return self._obs.copy(), {"question": pair.question, "target": pair.answer}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        t = self._venv.t
        if self._venv.done[0]:
            raise RuntimeError("step() called after the episode ended; call reset()")
        reward, ended = self._venv.step(torch.tensor([int(action)]))
        if not ended[0] and t + self.task.prompt_len < self.window:
            self._obs[self.task.prompt_len + t] = int(action)
        info: dict[str, Any] = {}
        if ended[0]:
            info = {
                "answer": self.task.answer_text(self._venv.answer[0], self._venv.answer_len[0]),
                "correct": bool(self._venv.exact[0]),
                "overlap": int(self._venv.overlap[0]),
                "credit": float(self._venv.credit[0]),
            }
        return self._obs.copy(), float(reward[0]), bool(ended[0]), False, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return " ".join(self.task.vocab.decode([i for i in self._obs.tolist() if i != PAD_ID]))
        return None


TEXT_QA_ID = "ppoqa/TextQA-v0"

# Importing this module registers the id once, so gymnasium.make finds it.
if TEXT_QA_ID not in gym.registry:
    gym.register(id=TEXT_QA_ID, entry_point="ppo_cli.textqa.gym_env:TextQAEnv")
