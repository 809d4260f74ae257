"""Adam without `torch.optim`, whose `torch._dynamo` import takes longer than a whole supervised
run on the built-in set: torch.optim.Adam's update (no weight decay or amsgrad), and with
`fused=True` the same `torch._fused_adam_` op, so gymnasium runs keep their exact numbers."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


def fused_available() -> bool:
    """torch >= 2.4 has the fused Adam kernel on CPU."""
    return hasattr(torch, "_fused_adam_")


class PlainAdam:
    """Adam with bias correction; `param_groups[0]["lr"]` like torch's, for logging/annealing.
    fused=True falls back to the loop where torch has no fused op."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        fused: bool = False,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.param_groups: list[dict[str, Any]] = [{"lr": lr, "betas": betas, "eps": eps}]
        self.fused = fused and fused_available()
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        # the fused kernel counts steps in float32 tensors, one per parameter, as torch does
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        self.step_count += 1
        if self.fused:
            live = [i for i, p in enumerate(self.params) if p.grad is not None]
            if not live:
                return
            steps = [self.steps[i] for i in live]
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                [self.params[i] for i in live],
                [self.params[i].grad for i in live],  # type: ignore[misc]
                [self.exp_avg[i] for i in live],
                [self.exp_avg_sq[i] for i in live],
                [],
                steps,
                amsgrad=False,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=0.0,
                eps=eps,
                maximize=False,
                grad_scale=None,
                found_inf=None,
            )
            return
        bias1 = 1 - beta1**self.step_count
        bias2_sqrt = math.sqrt(1 - beta2**self.step_count)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            if p.grad is None:
                continue
            m.lerp_(p.grad, 1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denom = (v.sqrt() / bias2_sqrt).add_(eps)
            p.addcdiv_(m, denom, value=-lr / bias1)

    def state_dict(self) -> dict[str, Any]:
        """torch.optim.Adam's layout (tensors and plain values: weights_only=True reads it), so
        checkpoints written with either optimizer resume with the other."""
        group = self.param_groups[0]
        count = torch.tensor(float(self.step_count))
        steps = [s.clone() if self.fused else count.clone() for s in self.steps]
        state = {
            i: {"step": steps[i], "exp_avg": m, "exp_avg_sq": v}
            for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True))
        }
        params = list(range(len(self.params)))
        return {"state": state if self.step_count else {}, "param_groups": [group | {
            "betas": tuple(group["betas"]), "params": params}]}  # fmt: skip

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        group = state_dict["param_groups"][0]
        if len(group["params"]) != len(self.params):
            raise ValueError("optimizer state has another number of parameters")
        self.param_groups[0].update(lr=group["lr"], betas=tuple(group["betas"]), eps=group["eps"])
        state = state_dict["state"]
        self.step_count = int(state[0]["step"]) if state else 0
        for i, p in enumerate(self.params):
            if i in state:
                self.steps[i] = torch.as_tensor(state[i]["step"], dtype=torch.float32).clone()
                self.exp_avg[i] = state[i]["exp_avg"].to(p).clone()
                self.exp_avg_sq[i] = state[i]["exp_avg_sq"].to(p).clone()
