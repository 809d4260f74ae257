"""ppoqa's numpy-vectorized Pendulum against gymnasium's own copies in a SyncVectorEnv."""

from __future__ import annotations

import numpy as np
import pytest

from ppo_cli.errors import EnvError
from ppo_cli.gym.envs import make_vec_env


def test_pendulum_vector_env_steps_like_gymnasiums_copies() -> None:
    ours, info = make_vec_env("Pendulum-v1", 5, "auto")
    theirs, their_info = make_vec_env("Pendulum-v1", 5, "sync")
    assert (info.vector_mode, their_info.vector_mode) == ("vector", "sync")
    assert info.obs_dim == their_info.obs_dim == 3 and info.action_kind == "box"
    a, _ = ours.reset(seed=7)
    b, _ = theirs.reset(seed=7)
    assert np.array_equal(a, b)  # sub-env i seeded with 7 + i
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(450):  # two time limits (200 steps) and their NEXT_STEP reset steps
        action = info.to_env(rng.normal(size=(5, 1)) * 3)
        mine, other = ours.step(action), theirs.step(action)
        assert np.array_equal(mine[0], other[0])  # observations bit for bit
        assert mine[0].dtype == other[0].dtype == np.float32
        # rewards to the last unit: numpy's scalar x**2 calls pow(), its array form multiplies
        np.testing.assert_allclose(mine[1], other[1], rtol=1e-14, atol=0)
        assert np.array_equal(mine[2], other[2]) and np.array_equal(mine[3], other[3])
        ended += int(mine[3].sum())
    assert ended == 10
    ours.close()
    theirs.close()


def test_pendulum_keywords_it_lacks_fall_back_or_are_refused() -> None:
    envs, info = make_vec_env("Pendulum-v1", 2, "auto", {"g": 9.81})
    assert info.vector_mode == "vector" and envs.env.g == 9.81
    envs.close()
    envs, info = make_vec_env("Pendulum-v1", 2, "auto", render_mode="rgb_array")
    assert info.vector_mode == "sync"
    envs.close()
    with pytest.raises(EnvError, match="does not support rendering"):
        make_vec_env("Pendulum-v1", 2, "vector", render_mode="rgb_array")
