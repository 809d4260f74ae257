"""Gymnasium: envs and spaces, normalization, rollout, evaluation and recording."""
