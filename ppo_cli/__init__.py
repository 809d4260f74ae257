"""ppoqa: Proximal Policy Optimization on text question answering and gymnasium tasks.

Importing the package imports nothing heavy (so `ppoqa --help` answers at once); `import
ppo_cli.textqa.gym_env` registers the gymnasium id ppoqa/TextQA-v0.
"""

__version__ = "0.1.0"
