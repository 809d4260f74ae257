"""GAE by hand: the seed's worked examples and small cases computed on paper."""

from __future__ import annotations

import math

import pytest
import torch

from ppo_cli.core.gae import compute_gae, normalize


def t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float32)


def close(actual: torch.Tensor, expected: list[float] | torch.Tensor, tol: float = 1e-5) -> None:
    torch.testing.assert_close(
        actual, torch.as_tensor(expected, dtype=torch.float32), atol=tol, rtol=0
    )


# --- the seed walkthrough -----------------------------------------------------------------


def test_seed_worked_example_correct_answer() -> None:
    # "What is 2+2?" -> "4", <END>: rewards [-0.1, 10], values [8.2, 9.8], second step terminal
    gae = compute_gae(t(-0.1, 10.0), t(8.2, 9.8), t(0, 1), gamma=0.99, gae_lambda=0.95)
    close(gae.deltas, [-0.1 + 0.99 * 9.8 - 8.2, 10.0 - 9.8])  # [1.402, 0.2]
    close(gae.advantages, [1.402 + 0.99 * 0.95 * 0.2, 0.2])
    close(gae.advantages, [1.59, 0.20], tol=5e-3)  # the seed's rounded numbers
    close(gae.returns, [9.79, 10.00], tol=5e-3)
    close(gae.next_values, [9.8, 0.0])


def test_seed_worked_example_wrong_answer() -> None:
    # "What is 2+2?" -> "5", <END>: rewards [-0.1, -2], values [8.2, 5.1]
    gae = compute_gae(t(-0.1, -2.0), t(8.2, 5.1), t(0, 1), gamma=0.99, gae_lambda=0.95)
    close(gae.advantages, [-9.93, -7.10], tol=5e-3)
    close(gae.advantages, [-3.251 + 0.99 * 0.95 * -7.1, -7.1])
    close(gae.returns, [-9.92855 + 8.2, -2.0])


# --- hand-computed cases ------------------------------------------------------------------


def test_terminal_in_the_middle_of_a_rollout_cuts_the_sum_and_the_bootstrap() -> None:
    # Two episodes back to back: steps 0-1 end at a terminal, steps 2-3 are cut off by the
    # rollout's end and bootstrap from last_value. gamma 0.9, lambda 0.8 (gamma*lambda 0.72).
    rewards, values, dones = t(1, 2, 3, 4), t(0.5, 1.0, 1.5, 2.0), t(0, 1, 0, 0)
    gae = compute_gae(rewards, values, dones, last_value=3.0, gamma=0.9, gae_lambda=0.8)
    d3 = 4 + 0.9 * 3.0 - 2.0  # 4.7: bootstraps from last_value
    d2 = 3 + 0.9 * 2.0 - 1.5  # 3.3
    d1 = 2 + 0.0 - 1.0  # 1.0: terminal, no V(s_2) from the next episode
    d0 = 1 + 0.9 * 1.0 - 0.5  # 1.4
    close(gae.deltas, [d0, d1, d2, d3])
    close(gae.advantages, [d0 + 0.72 * d1, d1, d2 + 0.72 * d3, d3])  # [2.12, 1.0, 6.684, 4.7]
    close(gae.returns, [2.62, 2.0, 8.184, 6.7])
    close(gae.next_values, [1.0, 0.0, 2.0, 3.0])


def test_non_terminal_end_bootstraps_from_last_value() -> None:
    rewards, values, dones = t(0.0, 0.0), t(0.0, 0.0), t(0, 0)
    gae = compute_gae(rewards, values, dones, last_value=5.0, gamma=0.5, gae_lambda=1.0)
    close(gae.advantages, [0.5 * 0.5 * 5.0, 0.5 * 5.0])
    # the same rollout ending in a terminal ignores last_value
    gae_done = compute_gae(rewards, values, t(0, 1), last_value=5.0, gamma=0.5, gae_lambda=1.0)
    close(gae_done.advantages, [0.0, 0.0])


def test_truncation_as_reward_plus_gamma_v_and_done_equals_bootstrapping() -> None:
    # The documented way to end a time-limited episode: fold gamma * V(final obs) into the
    # last reward and mark it done. It must equal bootstrapping from last_value.
    rewards, values, v_final, gamma = t(1.0, 0.5, 2.0), t(3.0, 2.0, 1.0), 4.0, 0.97
    boot = compute_gae(rewards, values, t(0, 0, 0), v_final, gamma, 0.9)
    folded = rewards.clone()
    folded[-1] += gamma * v_final
    trunc = compute_gae(folded, values, t(0, 0, 1), 0.0, gamma, 0.9)
    close(trunc.advantages, boot.advantages)
    close(trunc.returns, boot.returns)


def test_gamma_zero_gives_reward_minus_value() -> None:
    rewards, values = t(1.0, -2.0, 3.0, 0.5), t(0.3, 0.1, -1.0, 2.0)
    for lam in (0.0, 0.95, 1.0):
        gae = compute_gae(rewards, values, t(0, 0, 1, 0), last_value=9.0, gamma=0.0, gae_lambda=lam)
        close(gae.advantages, rewards - values)
        close(gae.returns, rewards)


def test_lambda_one_gives_discounted_return_minus_value() -> None:
    g, last = 0.9, 2.0
    rewards, values = t(1.0, 2.0, 3.0), t(0.5, -0.5, 1.5)
    gae = compute_gae(rewards, values, t(0, 0, 0), last_value=last, gamma=g, gae_lambda=1.0)
    g2 = 3.0 + g * last
    g1 = 2.0 + g * 3.0 + g**2 * last
    g0 = 1.0 + g * 2.0 + g**2 * 3.0 + g**3 * last
    close(gae.returns, [g0, g1, g2])
    close(gae.advantages, [g0 - 0.5, g1 + 0.5, g2 - 1.5])


def test_lambda_zero_gives_the_one_step_td_error() -> None:
    rewards, values = t(1.0, 2.0, 3.0), t(0.5, -0.5, 1.5)
    gae = compute_gae(rewards, values, t(0, 0, 0), last_value=2.0, gamma=0.9, gae_lambda=0.0)
    close(gae.advantages, gae.deltas)
    close(gae.deltas, [1.0 + 0.9 * -0.5 - 0.5, 2.0 + 0.9 * 1.5 + 0.5, 3.0 + 0.9 * 2.0 - 1.5])


def test_batch_dimensions_are_independent_columns() -> None:
    # [T=2, B=3]: the two seed examples and a column that is cut off, each with its own
    # last_value; every column equals the 1-D computation on it alone.
    rewards = torch.stack([t(-0.1, 10.0), t(-0.1, -2.0), t(1.0, 1.0)], dim=1)
    values = torch.stack([t(8.2, 9.8), t(8.2, 5.1), t(0.0, 0.0)], dim=1)
    dones = torch.stack([t(0, 1), t(0, 1), t(0, 0)], dim=1)
    last = t(100.0, 100.0, 4.0)
    gae = compute_gae(rewards, values, dones, last, 0.99, 0.95)
    assert gae.advantages.shape == (2, 3)
    for b in range(3):
        one = compute_gae(rewards[:, b], values[:, b], dones[:, b], last[b], 0.99, 0.95)
        close(gae.advantages[:, b], one.advantages)
        close(gae.returns[:, b], one.returns)
    close(gae.advantages[:, 0], [1.5901, 0.2])
    close(gae.advantages[:, 1], [-9.92855, -7.1])
    # three dimensions work too
    gae3 = compute_gae(rewards.unsqueeze(-1), values.unsqueeze(-1), dones.unsqueeze(-1), 0.0)
    assert gae3.advantages.shape == (2, 3, 1)


# --- normalization with a mask ------------------------------------------------------------


def test_normalize_uses_only_the_valid_entries() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0, 99.0], [4.0, 5.0, -50.0, 7.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    out = normalize(x, mask)
    std = math.sqrt(2.5)  # sample std of 1..5
    close(out[mask], [(v - 3.0) / std for v in (1, 2, 3, 4, 5)], tol=1e-4)
    assert out[~mask].abs().sum() == 0  # padding stays zero
    # changing padding values changes nothing
    y = torch.where(mask, x, torch.full_like(x, 1e6))
    close(normalize(y, mask), out)


def test_normalize_without_mask_is_mean_zero_std_one() -> None:
    x = torch.tensor([3.0, -1.0, 4.0, 1.0, 5.0])
    out = normalize(x)
    assert abs(float(out.mean())) < 1e-6
    assert float(out.std()) == pytest.approx(1.0, abs=1e-5)


def test_normalize_degenerate_masks() -> None:
    x = torch.tensor([5.0, 7.0, 9.0])
    close(normalize(x, torch.tensor([False, True, False])), [0.0, 0.0, 0.0])
    close(normalize(x, torch.tensor([False, False, False])), [0.0, 0.0, 0.0])
    assert torch.isfinite(normalize(torch.full((4,), 2.0))).all()  # constant: no 0/0
