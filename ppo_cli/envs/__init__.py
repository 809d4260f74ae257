"""Environments: text QA (single and batched) and the gymnasium registration."""

from __future__ import annotations

import gymnasium as gym

TEXT_QA_ID = "ppoqa/TextQA-v0"


def register_envs() -> None:
    """Register ppoqa/TextQA-v0 once, so gymnasium.make finds it after `import ppo_cli.envs`."""
    if TEXT_QA_ID not in gym.registry:
        gym.register(id=TEXT_QA_ID, entry_point="ppo_cli.envs.text_qa:TextQAEnv")


register_envs()
