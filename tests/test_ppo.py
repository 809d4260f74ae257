"""The PPO loss and update, and the masks of rolled-out text episodes."""

from __future__ import annotations

import math

import pytest
import torch

from ppo_cli.data import END_ID, PAD_ID, Vocabulary, load_dataset
from ppo_cli.envs.text_qa_vec import QATask, TextQAVecEnv
from ppo_cli.errors import TrainingError
from ppo_cli.gae import compute_gae, normalize
from ppo_cli.policies import ActorCritic, build_policy
from ppo_cli.ppo import Batch, UpdateSettings, ppo_loss, ppo_update
from ppo_cli.rollout import collect_text_episodes

EPS = 0.2


def surrogate_grad(ratio: float, advantage: float) -> tuple[float, float]:
    """Policy loss and d(policy loss)/d(log pi_new) for one sample with the given ratio."""
    new_logprob = torch.tensor([math.log(ratio)], requires_grad=True)
    zeros = torch.zeros(1)
    parts = ppo_loss(
        new_logprob,
        zeros,
        torch.tensor([advantage]),
        zeros,
        zeros,
        zeros,
        zeros,
        torch.ones(1, dtype=torch.bool),
        clip_coef=EPS,
    )
    parts.policy_loss.backward()
    return float(parts.policy_loss.detach()), float(new_logprob.grad[0])


# --- clipped surrogate --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "advantage"),
    [
        (1.5, 2.0),  # good action already made much more likely: no further push
        (1.21, 2.0),
        (0.5, -2.0),  # bad action already made much less likely: no further push
        (0.79, -2.0),
    ],
)
def test_gradient_vanishes_where_the_clip_binds(ratio: float, advantage: float) -> None:
    loss, grad = surrogate_grad(ratio, advantage)
    clipped = min(max(ratio, 1 - EPS), 1 + EPS)
    assert loss == pytest.approx(-clipped * advantage)
    assert grad == 0.0


@pytest.mark.parametrize(
    ("ratio", "advantage"),
    [
        (0.5, 2.0),  # outside, but the unclipped term is the smaller: keep pulling it up
        (1.5, -2.0),  # outside, but the unclipped term is the smaller: keep pushing it down
        (1.1, 2.0),  # inside [1 - eps, 1 + eps]
        (1.1, -2.0),
        (0.9, 2.0),
        (1.0, -0.5),
    ],
)
def test_gradient_flows_where_the_clip_does_not_bind(ratio: float, advantage: float) -> None:
    loss, grad = surrogate_grad(ratio, advantage)
    assert loss == pytest.approx(-ratio * advantage)
    # d(-r * A) / d log pi = -r * A: descent raises log pi when A > 0, lowers it when A < 0
    assert grad == pytest.approx(-ratio * advantage, rel=1e-5)
    assert grad != 0.0


def hand_batch() -> dict[str, torch.Tensor]:
    """Two episodes, three steps: the second has one real step, the first two."""
    return {
        "new_logprob": torch.log(torch.tensor([[1.5, 0.5, 1.0], [1.1, 1.0, 1.0]])),
        "old_logprob": torch.zeros(2, 3),
        "advantages": torch.tensor([[1.0, -1.0, 0.0], [2.0, 0.0, 0.0]]),
        "new_value": torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]]),
        "old_value": torch.tensor([[0.0, 2.0, 0.0], [0.5, 0.0, 0.0]]),
        "returns": torch.tensor([[2.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
        "entropy": torch.tensor([[0.5, 0.25, 0.0], [0.75, 0.0, 0.0]]),
        "mask": torch.tensor([[True, True, False], [True, False, False]]),
    }


def test_loss_parts_on_a_hand_example() -> None:
    b = hand_batch()
    parts = ppo_loss(**b, clip_coef=EPS, vf_coef=0.5, ent_coef=0.01)
    # valid samples: ratios 1.5 (A=1), 0.5 (A=-1), 1.1 (A=2)
    surr = [min(1.5 * 1, 1.2 * 1), min(0.5 * -1, 0.8 * -1), min(1.1 * 2, 1.1 * 2)]
    assert float(parts.policy_loss) == pytest.approx(-sum(surr) / 3)
    assert float(parts.value_loss) == pytest.approx(0.5 * (1.0 + 1.0 + 1.0) / 3)
    assert float(parts.entropy) == pytest.approx((0.5 + 0.25 + 0.75) / 3)
    assert float(parts.loss) == pytest.approx(
        float(parts.policy_loss) + 0.5 * float(parts.value_loss) - 0.01 * float(parts.entropy)
    )
    kl = [(r - 1) - math.log(r) for r in (1.5, 0.5, 1.1)]
    assert float(parts.approx_kl) == pytest.approx(sum(kl) / 3)
    assert float(parts.clipfrac) == pytest.approx(2 / 3)  # 1.5 and 0.5 are outside


def test_approx_kl_and_clipfrac_are_zero_before_any_update() -> None:
    b = hand_batch()
    b["new_logprob"] = b["old_logprob"].clone()
    parts = ppo_loss(**b, clip_coef=EPS)
    assert float(parts.approx_kl) == 0.0
    assert float(parts.clipfrac) == 0.0
    assert torch.all(parts.ratio == 1.0)


def test_clipped_value_loss_takes_the_larger_error() -> None:
    b = hand_batch()
    parts = ppo_loss(**b, clip_coef=EPS, clip_vloss=True)
    # step (0,0): v 1.0 from old 0.0 clipped to 0.2 -> max((1-2)^2, (0.2-2)^2) = 3.24
    # step (0,1): unchanged value 2.0 -> 1.0; step (1,0): 0.0 from 0.5 -> clipped 0.3 -> 1.0
    assert float(parts.value_loss) == pytest.approx(0.5 * (3.24 + 1.0 + 1.0) / 3)


def test_padded_steps_change_nothing_in_the_loss() -> None:
    b = hand_batch()
    base = ppo_loss(**b, clip_coef=EPS)
    garbage = {k: v.clone() for k, v in b.items()}
    pad = ~b["mask"]
    for key in ("new_logprob", "old_logprob", "advantages", "new_value", "returns", "entropy"):
        garbage[key][pad] = torch.tensor([7.0, -40.0, 1e4])
    garbage["new_logprob"] = garbage["new_logprob"].requires_grad_(True)
    noisy = ppo_loss(**garbage, clip_coef=EPS)
    for name in ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac"):
        assert float(getattr(noisy, name).detach()) == pytest.approx(float(getattr(base, name))), (
            name
        )
    noisy.loss.backward()
    assert torch.all(garbage["new_logprob"].grad[pad] == 0)
    # and it equals the loss over the valid steps alone, flattened
    flat = {k: v[b["mask"]] for k, v in b.items()}
    assert float(ppo_loss(**flat, clip_coef=EPS).loss) == pytest.approx(float(base.loss))


# --- rollout masks ------------------------------------------------------------------------


class ScriptedPolicy(ActorCritic):
    """Plays a fixed action table: row i, step t -> script[i, t]; V = 0.5 * (t + 1)."""

    kind = "scripted"

    def __init__(self, script: torch.Tensor, prompt_len: int) -> None:
        super().__init__()
        self.script = script
        self.prompt_len = prompt_len

    def act(self, obs: torch.Tensor, greedy: bool = False):
        step = obs.shape[1] - self.prompt_len
        n = obs.shape[0]
        return self.script[:, step], torch.full((n,), -1.0), torch.full((n,), 0.5 * (step + 1))


@pytest.fixture
def builtin_task() -> QATask:
    data = load_dataset(None)
    return QATask(data, Vocabulary.from_dataset(data))


def test_rollout_masks_dones_and_padding_are_consistent(builtin_task: QATask) -> None:
    task = builtin_task
    ids = {w: task.vocab.encode([w])[0][0] for w in ("4", "blue", "Paris")}
    four, blue = ids["4"], ids["blue"]
    # Episodes of every length 1..5 on "What is 2+2?" (index 1).
    script = torch.full((5, task.max_steps), blue)
    for row, length in enumerate((1, 2, 3, 4)):
        script[row, length - 1] = END_ID
    script[1, 0] = four  # row 1: "4", <END> -> exact
    question_idx = torch.ones(5, dtype=torch.long)
    ro = collect_text_episodes(
        ScriptedPolicy(script, task.prompt_len), TextQAVecEnv(task), question_idx
    )
    lengths = ro.mask.sum(1)
    assert lengths.tolist() == [1, 2, 3, 4, 5]
    assert torch.all(ro.mask[:, 1:] <= ro.mask[:, :-1])  # steps happen as a prefix
    assert ro.dones.sum(1).tolist() == [1.0] * 5  # exactly one end per episode...
    assert torch.all(ro.dones[torch.arange(5), lengths - 1] == 1)  # ...at its last step
    pad = ~ro.mask
    assert torch.all(ro.actions[pad] == PAD_ID)
    for name in ("logprobs", "values", "rewards", "dones"):
        assert torch.all(getattr(ro, name)[pad] == 0), name
    assert torch.all(ro.logprobs[ro.mask] == -1.0)
    assert ro.exact.tolist() == [False, True, False, False, False]
    assert ro.answer_len.tolist() == [0, 1, 2, 3, 4]
    assert ro.num_steps == 15
    torch.testing.assert_close(ro.episode_returns, torch.tensor([-2.0, 9.9, -2.2, -2.3, -2.4]))
    # the token window holds every non-final action, then <PAD>
    p = task.prompt_len
    for i, n in enumerate(lengths.tolist()):
        assert ro.tokens[i, p : p + n - 1].tolist() == ro.actions[i, : n - 1].tolist()
        assert torch.all(ro.tokens[i, p + n - 1 :] == PAD_ID)

    batch, deltas = ro.to_batch(gamma=0.99, gae_lambda=0.95)
    for name in ("advantages", "returns"):
        assert torch.all(getattr(batch, name)[pad] == 0), name
    assert torch.all(deltas[pad] == 0)
    # row 1 is the seed's shape: rewards [-0.1, 10], values [0.5, 1.0], terminal at step 1
    one = compute_gae(torch.tensor([-0.1, 10.0]), torch.tensor([0.5, 1.0]), torch.tensor([0, 1]))
    torch.testing.assert_close(batch.advantages[1, :2], one.advantages)
    torch.testing.assert_close(batch.returns[1, :2], one.returns)


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_update_scores_the_rollout_as_it_was_generated(builtin_task: QATask, kind: str) -> None:
    """The first minibatch sees ratio 1 on every valid step: evaluate() reproduces act()."""
    torch.manual_seed(0)
    policy = build_policy({"kind": kind, "vocab_size": len(builtin_task.vocab), "hidden_size": 16})
    ro = collect_text_episodes(policy, TextQAVecEnv(builtin_task), torch.arange(5).repeat(4))
    assert ro.mask.sum(1).unique().numel() > 1  # episodes of several lengths
    new_logprob, _, new_value = policy.evaluate(ro.tokens, ro.actions)
    torch.testing.assert_close(new_logprob[ro.mask], ro.logprobs[ro.mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(new_value[ro.mask], ro.values[ro.mask], atol=1e-5, rtol=0)


# --- the update loop ----------------------------------------------------------------------


def fixed_batch(task: QATask, seed: int = 0) -> tuple[ActorCritic, Batch]:
    torch.manual_seed(seed)
    policy = build_policy({"kind": "lstm", "vocab_size": len(task.vocab), "hidden_size": 32})
    ro = collect_text_episodes(policy, TextQAVecEnv(task), torch.arange(5).repeat(8))
    return policy, ro.to_batch(0.99, 0.95)[0]


def full_batch_loss(policy: ActorCritic, batch: Batch) -> float:
    with torch.no_grad():
        new_logprob, entropy, new_value = policy.evaluate(batch.obs, batch.actions)
        adv = normalize(batch.advantages, batch.mask)
        parts = ppo_loss(
            new_logprob,
            batch.old_logprobs,
            adv,
            new_value,
            batch.old_values,
            batch.returns,
            entropy,
            batch.mask,
        )
    return float(parts.loss)


def test_ppo_update_runs_and_reduces_the_loss_on_a_fixed_batch(builtin_task: QATask) -> None:
    policy, batch = fixed_batch(builtin_task)
    optimizer = torch.optim.Adam(policy.parameters(), lr=5e-3, eps=1e-5)
    before = full_batch_loss(policy, batch)
    seen: list[tuple[int, int, int]] = []
    stats = ppo_update(
        policy,
        optimizer,
        batch,
        UpdateSettings(update_epochs=4, num_minibatches=4),
        on_minibatch=lambda e, k, mb, parts: seen.append((e, k, mb.size)),
    )
    after = full_batch_loss(policy, batch)
    assert after < before - 0.1, (before, after)
    assert stats["epochs"] == 4 and stats["gradient_updates"] == 16
    assert len(stats["epoch_losses"]) == 4
    assert [(e, k) for e, k, _ in seen] == [(e, k) for e in range(4) for k in range(4)]
    assert sum(size for e, _, size in seen if e == 0) == batch.size == 40  # each episode once
    assert stats["approx_kl"] > 0 and 0 <= stats["clipfrac"] <= 1
    assert all(math.isfinite(stats[k]) for k in ("loss", "policy_loss", "value_loss", "entropy"))


def test_target_kl_stops_the_epochs_early(builtin_task: QATask) -> None:
    policy, batch = fixed_batch(builtin_task)
    optimizer = torch.optim.Adam(policy.parameters(), lr=5e-2)
    stats = ppo_update(policy, optimizer, batch, UpdateSettings(update_epochs=8, target_kl=1e-9))
    assert stats["kl_stop"] is True
    assert stats["epochs"] == 1 and stats["gradient_updates"] == 2


def test_a_nan_loss_stops_training_with_a_clear_error(builtin_task: QATask) -> None:
    policy, batch = fixed_batch(builtin_task)
    batch.returns[0, 0] = float("nan")
    optimizer = torch.optim.Adam(policy.parameters(), lr=5e-3)
    with pytest.raises(TrainingError, match="loss became nan"):
        ppo_update(policy, optimizer, batch, UpdateSettings())


@pytest.mark.parametrize("per_minibatch", [False, True])
def test_advantages_are_normalized_per_batch_or_per_minibatch(per_minibatch: bool) -> None:
    """--norm-adv-minibatch: each minibatch's advantages reach the loss with mean 0 and std 1
    (CleanRL's and SB3's way); by default the whole batch is normalized once, so a minibatch's
    mean is not 0 but every step keeps the one normalized value the traces show."""
    from ppo_cli.policies import MLPActorCritic

    torch.manual_seed(0)
    policy = MLPActorCritic(3, 2, 8)
    n = 64
    obs = torch.randn(n, 3)
    with torch.no_grad():
        actions, logprobs, values = policy.act(obs)
    advantages = torch.randn(n) * 5 + 3
    batch = Batch(obs, actions, logprobs, values, advantages, values + advantages,
                  torch.ones(n, dtype=torch.bool))  # fmt: skip
    seen: list[torch.Tensor] = []
    settings = UpdateSettings(update_epochs=1, num_minibatches=4, norm_adv_minibatch=per_minibatch)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.0)
    ppo_update(
        policy, optimizer, batch, settings, lambda e, k, mb, parts: seen.append(mb.advantages)
    )
    assert len(seen) == 4
    means = torch.stack([a.mean() for a in seen]).abs()
    stds = torch.stack([a.std() for a in seen])
    if per_minibatch:
        assert means.max() < 1e-5 and (stds - 1).abs().max() < 1e-4
    else:
        assert means.max() > 0.05
        assert torch.allclose(torch.cat(seen).sort().values, normalize(advantages).sort().values)


def test_shuffled_keeps_each_question_in_one_run_of_the_order() -> None:
    """A text-QA minibatch takes whole questions: each group's samples are side by side in the
    shuffled order, which is still a permutation of all the samples."""
    from ppo_cli.ppo import shuffled

    torch.manual_seed(0)
    groups = torch.randint(0, 50, (400,))
    order = shuffled(400, groups)
    assert sorted(order.tolist()) == list(range(400))
    seen = groups[order]
    starts = torch.cat([torch.tensor([True]), seen[1:] != seen[:-1]])
    assert int(starts.sum()) == torch.unique(groups).numel()  # one run per group
    assert shuffled(400, None).shape == (400,)
