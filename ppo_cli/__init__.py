"""ppoqa: Proximal Policy Optimization on text question answering and gymnasium tasks.

Importing the package imports nothing heavy (so `ppoqa --help` answers at once); `import
ppo_cli.envs` registers the gymnasium id ppoqa/TextQA-v0.
"""

import os

__version__ = "0.1.0"

# oneDNN (torch's CPU LSTM) caches a compiled primitive for every input shape it meets, up to
# 1,024 of them. A text-QA run meets a new batch shape at almost every minibatch and rollout
# chunk, so the cache grew by ~2 MB per iteration and fragmented the heap: 1.2 GB peak on a
# 1,000-pair run instead of ~0.5 GB. Shapes rarely repeat, so a small cache costs no speed.
# Read once, when torch first runs oneDNN; a value the user set is kept.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")
