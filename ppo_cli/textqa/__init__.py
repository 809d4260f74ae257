"""Text QA: datasets, rewards, the batched env, token policies, evaluation, SFT and RLHF."""
