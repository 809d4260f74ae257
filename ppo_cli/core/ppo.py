"""The PPO objective (Schulman et al., 2017) and the update loop over shuffled minibatches."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ppo_cli.config import Config
from ppo_cli.core.gae import normalize
from ppo_cli.errors import TrainingError

# The update's diagnostics every metrics record carries (ppo_update's keys).
STATS = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac")


@dataclass
class Batch:
    """What the PPO update consumes; every tensor's first dimension indexes samples: an episode
    (text QA, [N, T] with a mask) or a step (gymnasium, [N])."""

    obs: torch.Tensor
    actions: torch.Tensor
    old_logprobs: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    mask: torch.Tensor
    # gymnasium with action_mask on: [N, A] bool, the actions the env allowed at each step
    action_mask: torch.Tensor | None = None
    # text QA with --kl-in loss: [N, T] log pi_ref of the sampled tokens (GRPO's KL term)
    ref_logprobs: torch.Tensor | None = None
    # text QA: [N] question of each episode; a minibatch takes whole questions (see shuffled)
    groups: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return self.actions.shape[0]

    def __getitem__(self, idx: torch.Tensor | slice) -> Batch:
        parts = (getattr(self, f) for f in self.__dataclass_fields__)
        return Batch(*(None if x is None else x[idx] for x in parts))


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of x over mask; mask None: every element counts (gymnasium's flat batches, where
    the mask is all ones: the same number as the masked form, in one op instead of five)."""
    if mask is None:
        return x.mean()
    mask = mask.float()
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def aggregate(x: torch.Tensor, mask: torch.Tensor | None, how: str = "token") -> torch.Tensor:
    """One number from per-token terms x [N, T] over the real tokens (mask): `token` weighs every
    token alike (DAPO), `sequence` every completion alike (GRPO's 1/|o_i|), `constant` divides
    the token sum by N x T, the longest possible completions (Dr. GRPO: no length bias). A 1-D
    mask (gymnasium's one step per sample) has no completions: every way is `token`."""
    if how == "token" or mask is None or mask.dim() < 2:
        return masked_mean(x, mask)
    m = mask.float()
    if how == "sequence":
        per_row = (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # [N]
        rows = (m.sum(1) > 0).float()
        return (per_row * rows).sum() / rows.sum().clamp(min=1.0)
    return (x * m).sum() / max(1, m.numel())  # constant: validate() admits no other way


def clipped_surrogate(
    ratio: torch.Tensor, advantages: torch.Tensor, clip_coef: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample: (unclipped ratio*A, clipped clip(ratio)*A, their min), for the loss, the
    traces and `ppoqa explain-clip` alike."""
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef) * advantages
    return unclipped, clipped, torch.min(unclipped, clipped)


def explained_variance(
    values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor | None = None
) -> float | None:
    """1 - Var(returns - values) / Var(returns) over the real steps (CleanRL's diagnostic):
    1 means the critic predicts the returns perfectly, <= 0 that it explains nothing. None
    when the returns do not vary."""
    if mask is not None:
        values, returns = values[mask.bool()], returns[mask.bool()]
    var_y = float(returns.var()) if returns.numel() > 1 else 0.0
    if var_y == 0.0 or not math.isfinite(var_y):
        return None
    return 1.0 - float((returns - values).var()) / var_y


@dataclass
class LossParts:
    loss: torch.Tensor
    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clipfrac: torch.Tensor
    ratio: torch.Tensor  # per sample, for traces
    kl: torch.Tensor | None = None  # mean k3 KL to the reference (--kl-in loss), else None


def ppo_loss(
    new_logprob: torch.Tensor,
    old_logprob: torch.Tensor,
    advantages: torch.Tensor,
    new_value: torch.Tensor,
    old_value: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    mask: torch.Tensor | None,
    clip_coef: float = Config.clip_coef,
    vf_coef: float = Config.vf_coef,
    ent_coef: float = Config.ent_coef,
    clip_vloss: bool = Config.clip_vloss,
    *,
    loss_agg: str = Config.loss_agg,
    use_critic: bool = True,
    ref_logprob: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> LossParts:
    """Clipped surrogate + value loss - entropy bonus, averaged over the valid samples.

    approx_kl is (r - 1) - log r (Schulman's "Approximating KL"). use_critic=False: no value
    loss. ref_logprob with kl_coef: GRPO's k3 KL term to the reference, in the loss."""
    logratio = new_logprob - old_logprob
    ratio = logratio.exp()
    _, _, objective = clipped_surrogate(ratio, advantages, clip_coef)
    policy_loss = -aggregate(objective, mask, loss_agg)
    value_loss = torch.zeros(())
    if use_critic:
        v_err = (new_value - returns) ** 2
        if clip_vloss:
            v_clipped = old_value + torch.clamp(new_value - old_value, -clip_coef, clip_coef)
            v_err = torch.max(v_err, (v_clipped - returns) ** 2)
        value_loss = 0.5 * masked_mean(v_err, mask)
    # No bonus: the entropy is a diagnostic only, left out of the graph the backward pass walks
    # (the loss and its gradients are the same numbers as with the 0 * term)
    bonus = ent_coef != 0.0 or not use_critic
    entropy_mean = aggregate(entropy if bonus else entropy.detach(), mask, loss_agg)
    loss = policy_loss + vf_coef * value_loss if use_critic else policy_loss
    if bonus:
        loss = loss - ent_coef * entropy_mean
    kl = None
    if ref_logprob is not None:
        log_r = ref_logprob - new_logprob  # k3 = (r - 1) - log r, r = pi_ref / pi: >= 0
        kl = aggregate(torch.expm1(log_r) - log_r, mask, loss_agg)
        if kl_coef > 0:
            loss = loss + kl_coef * kl
        kl = kl.detach()
    with torch.no_grad():
        approx_kl = masked_mean((ratio - 1) - logratio, mask)
        clipfrac = masked_mean(((ratio - 1).abs() > clip_coef).float(), mask)
    return LossParts(loss, policy_loss, value_loss, entropy_mean, approx_kl, clipfrac, ratio, kl)


@dataclass
class UpdateSettings:
    """The update's settings; the defaults are Config's (one set of defaults)."""

    update_epochs: int = Config.update_epochs
    num_minibatches: int = Config.num_minibatches
    clip_coef: float = Config.clip_coef
    vf_coef: float = Config.vf_coef
    ent_coef: float = Config.ent_coef
    max_grad_norm: float = Config.max_grad_norm
    clip_vloss: bool = Config.clip_vloss
    norm_adv: bool = Config.norm_adv
    norm_adv_minibatch: bool = Config.norm_adv_minibatch
    target_kl: float | None = Config.target_kl
    loss_agg: str = Config.loss_agg
    use_critic: bool = True  # False: no value loss (the critic-free estimators)
    kl_loss_coef: float = 0.0  # > 0 with --kl-in loss: the k3 term's coefficient

    @classmethod
    def from_config(cls, cfg: Config) -> UpdateSettings:
        """The settings every kind of run shares (a wing adds its own: use_critic, ...)."""
        return cls(**{k: getattr(cfg, k) for k in cls.__dataclass_fields__ if hasattr(cfg, k)})


def shuffled(n: int, groups: torch.Tensor | None) -> torch.Tensor:
    """A random order of n samples; with groups, each group's samples side by side (groups and
    samples in random order): the encoder reads each distinct prompt of a minibatch once, and
    whole questions hold ~1/4 as many, most of the update's time on a large text-QA dataset."""
    order = torch.randperm(n)
    if groups is None:
        return order
    rank = torch.randperm(int(groups.max()) + 1)[groups[order]]
    return order[torch.argsort(rank, stable=True)]


_LOSS_SETTINGS = ("clip_coef", "vf_coef", "ent_coef", "clip_vloss", "loss_agg", "use_critic")
# Called once per minibatch with (epoch, minibatch index, minibatch, loss parts): traces hook in.
MinibatchHook = Callable[[int, int, Batch, LossParts], None]


def ppo_update(
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    settings: UpdateSettings,
    on_minibatch: MinibatchHook | None = None,
) -> dict[str, float]:
    """Several epochs of shuffled minibatches; returns the mean diagnostics of the last epoch
    plus per-epoch losses (for the walkthrough's loss curve)."""
    per_minibatch = settings.norm_adv and settings.norm_adv_minibatch
    if settings.norm_adv and not per_minibatch:
        # Normalized once over the whole batch's valid steps, so each step's normalized
        # advantage is a single number the traces can show. Per minibatch (CleanRL's and
        # SB3's way) is the option; with rl-zoo3's 64-sample minibatches it is noisier.
        batch = Batch(**{**batch.__dict__, "advantages": normalize(batch.advantages, batch.mask)})
    n = batch.size  # never 0: config.validate keeps gymnasium batches from being all reset steps
    mb_size = max(1, -(-n // settings.num_minibatches))
    params = list(policy.parameters())  # once: walking the modules is not free per minibatch
    # A flat batch whose mask is all ones (gymnasium) averages with plain means: the same
    # numbers as the masked form, a fifth of the ops per loss term.
    loss_mask_off = batch.mask.dim() == 1 and bool(batch.mask.all())
    loss_settings = {k: getattr(settings, k) for k in _LOSS_SETTINGS}  # ppo_loss's keywords
    epoch_losses: list[float] = []
    stats: dict[str, list[float]] = {}
    kl_stop = False
    for epoch in range(settings.update_epochs):
        stats = {k: [] for k in STATS}
        kl_values: list[float] = []  # the k3 term of --kl-in loss, when there is one
        perm = shuffled(n, batch.groups)
        # Reordered once per epoch, so each minibatch is a slice (a view), not a gather of
        # every field: the same samples in the same order as indexing with perm's pieces.
        ordered = batch[perm]
        for k, start in enumerate(range(0, n, mb_size)):
            mb = ordered[start : start + mb_size]
            if per_minibatch:
                mb = Batch(**{**mb.__dict__, "advantages": normalize(mb.advantages, mb.mask)})
            # scored under the same mask the actions were sampled with
            masking = {} if mb.action_mask is None else {"action_mask": mb.action_mask}
            new_logprob, entropy, new_value = policy.evaluate(mb.obs, mb.actions, **masking)
            parts = ppo_loss(
                new_logprob,
                mb.old_logprobs,
                mb.advantages,
                new_value,
                mb.old_values,
                mb.returns,
                entropy,
                None if loss_mask_off else mb.mask,
                ref_logprob=mb.ref_logprobs,
                kl_coef=settings.kl_loss_coef,
                **loss_settings,
            )
            loss_value = float(parts.loss.detach())
            if not math.isfinite(loss_value):
                raise TrainingError(
                    f"loss became {loss_value} (epoch {epoch + 1})",
                    "lower --learning-rate or --max-grad-norm; the last good checkpoint is kept",
                )
            optimizer.zero_grad(set_to_none=True)
            parts.loss.backward()
            nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            optimizer.step()
            if on_minibatch is not None:
                on_minibatch(epoch, k, mb, parts)
            for key in STATS:
                stats[key].append(float(getattr(parts, key).detach()))
            if parts.kl is not None:
                kl_values.append(float(parts.kl))
        epoch_losses.append(sum(stats["loss"]) / len(stats["loss"]))
        if settings.target_kl is not None and stats["approx_kl"][-1] > settings.target_kl:
            kl_stop = True
            break
    out = {key: sum(v) / len(v) for key, v in stats.items()}
    out["epoch_losses"] = epoch_losses  # type: ignore[assignment]
    out["epochs"] = len(epoch_losses)
    out["gradient_updates"] = len(epoch_losses) * len(range(0, n, mb_size))
    out["kl_stop"] = kl_stop
    if kl_values:
        out["kl_loss"] = sum(kl_values) / len(kl_values)
    return out


def check_finite_parameters(policy: nn.Module, iteration: int) -> None:
    """Stop before NaN/Inf weights are used, logged or saved."""
    for name, param in policy.named_parameters():
        if not torch.isfinite(param).all():
            raise TrainingError(
                f"parameter {name} became NaN/Inf at iteration {iteration}",
                "lower --learning-rate or --max-grad-norm",
            )


def check_finite_metrics(record: dict[str, Any], keys: tuple[str, ...], iteration: int) -> None:
    for key in keys:
        value = record.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            raise TrainingError(
                f"{key} became {value} at iteration {iteration}", "lower --learning-rate"
            )
