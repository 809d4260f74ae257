"""The gymnasium policy: separate actor and critic MLPs."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ppo_cli.core.policy import (
    ActorCritic,
    FastCategorical,
    FastNormal,
    masked,
    orthogonal,
    sequential,
)

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


class MLPActorCritic(ActorCritic):
    """Separate actor and critic MLPs with orthogonal init, as in CleanRL's ppo.py. The action
    head follows the action space: one categorical (discrete), one per component (multi_discrete),
    or a Gaussian with a state-independent log-std (box, CleanRL's ppo_continuous_action.py);
    log-probs and entropies are summed over components or dimensions."""

    kind = "mlp"

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden_size: int = 64,
        action_kind: str = "discrete",
        action_nvec: list[int] | None = None,
        log_std_init: float = 0.0,
        activation: str = "tanh",
        ortho_init: bool = True,
        action_mask: bool = False,
    ) -> None:
        super().__init__()
        self.obs_dim, self.num_actions, self.hidden_size = obs_dim, num_actions, hidden_size
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}")
        self.activation, self.ortho_init = activation, ortho_init
        # Invalid-action masking (Huang & Ontañón 2020): the rollout and evaluation pass the
        # env's info["action_mask"]; masked logits get NEG, in sampling and in the update.
        self.uses_action_mask = action_mask
        if action_mask and action_kind != "discrete":
            raise ValueError("action_mask needs a Discrete action space")
        self.action_kind = action_kind
        self.action_nvec = [int(n) for n in (action_nvec or [])]
        if action_kind not in ("discrete", "multi_discrete", "box"):
            raise ValueError(f"unknown action kind {action_kind!r}")
        if action_kind == "multi_discrete" and len(self.action_nvec) != num_actions:
            raise ValueError("action_nvec must have num_actions entries")
        out = sum(self.action_nvec) if action_kind == "multi_discrete" else num_actions
        g = math.sqrt(2)
        act = ACTIVATIONS[activation]

        def init(layer: nn.Linear, gain: float) -> nn.Linear:
            # CleanRL's orthogonal init; without it, torch's default (as rl-zoo3's MuJoCo
            # entries ask with ortho_init=False)
            return orthogonal(layer, gain) if ortho_init else layer

        def trunk() -> list[nn.Module]:
            return [
                init(nn.Linear(obs_dim, hidden_size), g),
                act(),
                init(nn.Linear(hidden_size, hidden_size), g),
                act(),
            ]

        self.critic = nn.Sequential(*trunk(), init(nn.Linear(hidden_size, 1), 1.0))
        self.actor = nn.Sequential(*trunk(), init(nn.Linear(hidden_size, out), 0.01))
        if action_kind == "box":
            self.log_std = nn.Parameter(torch.full((num_actions,), float(log_std_init)))

    def logits_values(
        self, obs: torch.Tensor, steps: int | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Actor output (logits, or the Gaussian mean for box) [B, out] and V(s) [B]."""
        obs = obs.float()
        return sequential(self.actor, obs), sequential(self.critic, obs).squeeze(-1)

    def _split(self, logits: torch.Tensor) -> list[FastCategorical]:
        return [FastCategorical(x) for x in logits.split(self.action_nvec, dim=-1)]

    def act(
        self, obs: torch.Tensor, greedy: bool = False, action_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, logprob [B], value [B]); action is [B] for discrete, [B, A] otherwise.
        action_mask [B, A] bool (Discrete only): actions never to take."""
        if self.action_kind == "discrete":
            if action_mask is None:
                return super().act(obs, greedy)
            logits, value = self.logits_values(obs, None)
            dist = FastCategorical(masked(logits, action_mask))
            action = dist.logits.argmax(-1) if greedy else dist.sample()
            return action, dist.log_prob(action), value
        out, value = self.logits_values(obs, None)
        if self.action_kind == "box":
            dist = FastNormal(out, self.log_std.exp().expand_as(out))
            action = out if greedy else dist.sample()  # [B, A], unclipped
            return action, dist.log_prob(action).sum(-1), value
        dists = self._split(out)
        parts = [d.probs.argmax(-1) if greedy else d.sample() for d in dists]
        logprob = torch.stack([d.log_prob(a) for d, a in zip(dists, parts, strict=True)], -1)
        return torch.stack(parts, -1), logprob.sum(-1), value  # [B, K]

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """act(obs, greedy=True)'s action from the actor alone: evaluation needs neither the
        critic nor the distribution (argmax of the logits is argmax of the log-probs)."""
        out = sequential(self.actor, obs.float())
        if self.action_kind == "discrete":
            return out.argmax(-1)
        if self.action_kind == "box":
            return out
        return self.act(obs, greedy=True)[0]  # argmax of each part's probabilities, as act's

    def evaluate(
        self, obs: torch.Tensor, actions: torch.Tensor, action_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log pi(a|s) [B], entropy [B] and V(s) [B] for the sampled (unclipped) actions."""
        out, value = self.logits_values(obs, None)
        if self.action_kind == "discrete":
            dist = FastCategorical(out if action_mask is None else masked(out, action_mask))
            return dist.log_prob(actions), dist.entropy(), value
        if self.action_kind == "box":
            dist = FastNormal(out, self.log_std.exp().expand_as(out))
            return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1), value
        dists = self._split(out)
        logprob = torch.stack([d.log_prob(actions[:, i]) for i, d in enumerate(dists)], -1)
        entropy = torch.stack([d.entropy() for d in dists], -1)
        return logprob.sum(-1), entropy.sum(-1), value

    def spec(self) -> dict[str, Any]:
        sizes = ("obs_dim", "num_actions", "hidden_size")
        spec = {"kind": self.kind, **{k: getattr(self, k) for k in sizes}}
        # a spec names only what differs from the defaults
        options = {
            "action_kind": (self.action_kind, "discrete"),
            "action_nvec": (list(self.action_nvec), []),
            "activation": (self.activation, "tanh"),
            "ortho_init": (self.ortho_init, True),
            "action_mask": (self.uses_action_mask, False),
        }
        return spec | {k: value for k, (value, default) in options.items() if value != default}


def build_policy(spec: dict[str, Any]) -> MLPActorCritic:
    args = dict(spec)
    if args.pop("kind") != "mlp":
        raise ValueError(f"unknown policy kind {spec['kind']!r}")
    return MLPActorCritic(**args)
