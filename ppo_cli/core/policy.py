"""The actor-critic interface the rollout and the PPO update rely on (act, evaluate,
get_value), and the distributions and layer helpers every network shares."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

NEG = -1e9  # logit for actions a policy must never take (finite: keeps entropy finite)
LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


def orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class FastCategorical:
    """torch.distributions.FastCategorical(...)'s numbers (the same ops, bit for bit)
    without its argument validation and object overhead, which dominate a small MLP's update."""

    __slots__ = ("logits", "probs")

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits - logits.logsumexp(dim=-1, keepdim=True)
        self.probs = torch.softmax(self.logits, -1)

    def sample(self) -> torch.Tensor:
        with torch.no_grad():
            flat = self.probs.reshape(-1, self.probs.shape[-1])
            return torch.multinomial(flat, 1, True).T.reshape(self.probs.shape[:-1])

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, value.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        logits = torch.clamp(self.logits, min=torch.finfo(self.logits.dtype).min)
        return -(logits * self.probs).sum(-1)


class FastNormal:
    """torch.distributions.Normal(loc, scale)'s numbers, bit for bit, without validation."""

    __slots__ = ("loc", "scale")

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        self.loc, self.scale = loc, scale

    def sample(self) -> torch.Tensor:
        with torch.no_grad():
            return torch.normal(self.loc, self.scale)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return -((value - self.loc) ** 2) / (2 * self.scale**2) - self.scale.log() - LOG_SQRT_2PI

    def entropy(self) -> torch.Tensor:
        return 0.5 + 0.5 * math.log(2 * math.pi) + torch.log(self.scale)


def sequential(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """net(x) for a Sequential of Linear and Tanh/ReLU, calling the same functions those modules'
    forward() call (bit-identical) without nn.Module.__call__'s hook machinery, a large share
    of a small MLP's rollout and update time."""
    for layer in net:
        if isinstance(layer, nn.Linear):
            x = torch.nn.functional.linear(x, layer.weight, layer.bias)
        elif isinstance(layer, nn.Tanh):
            x = torch.tanh(x)
        elif isinstance(layer, nn.ReLU):
            x = torch.relu(x)
        else:
            x = layer(x)
    return x


def masked(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Logits with the disallowed actions at NEG (finite, so entropies stay finite); a row
    that allows nothing is left as it is rather than made all -inf."""
    allowed = allowed.bool() | ~allowed.bool().any(-1, keepdim=True)
    return logits.masked_fill(~allowed, NEG)


class ActorCritic(nn.Module):
    kind = "base"

    def logits_values(
        self, obs: torch.Tensor, steps: int | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [..., A] and values [...] for the decision points of obs."""
        raise NotImplementedError

    def act(
        self, obs: torch.Tensor, greedy: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or argmax) an action per row: (action [B], logprob [B], value [B])."""
        logits, value = self.logits_values(obs, None)
        dist = FastCategorical(logits)
        action = logits.argmax(-1) if greedy else dist.sample()
        return action, dist.log_prob(action), value

    def evaluate(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log pi(a|s), entropy and V(s), shaped like actions."""
        steps = actions.shape[1] if actions.dim() == 2 else None
        logits, value = self.logits_values(obs, steps)
        dist = FastCategorical(logits)
        return dist.log_prob(actions), dist.entropy(), value

    def act_step(
        self, obs: torch.Tensor, greedy: bool, memory: Any = None, force: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
        """act() while generating one token at a time: obs is the prompt plus the tokens so
        far, and memory what this policy kept from reading the previous obs (None at the
        first step). A policy that can resume from it (the LSTM: its state) reads only the
        new token; the default reads obs whole. Returns act()'s triple and the new memory."""
        return (*self.act(obs, greedy), None)

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits_values(obs, None)[1]

    def spec(self) -> dict[str, Any]:
        """Plain values that rebuild this network (stored in checkpoints)."""
        raise NotImplementedError
