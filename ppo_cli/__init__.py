"""ppoqa: Proximal Policy Optimization on text question answering and gymnasium tasks."""

from ppo_cli.envs import register_envs

__version__ = "0.1.0"

register_envs()
