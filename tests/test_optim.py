"""PlainAdam is torch's Adam: fused bit for bit, checkpoints interchangeable, no _dynamo import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from ppo_cli.core.optim import PlainAdam, fused_available


def _nets() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    b = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    b.load_state_dict(a.state_dict())
    return a, b


def _step(net: torch.nn.Module, opt: object, x: torch.Tensor) -> None:
    opt.zero_grad()  # type: ignore[attr-defined]
    net(x).pow(2).sum().backward()
    opt.step()  # type: ignore[attr-defined]


@pytest.mark.skipif(not fused_available(), reason="torch has no fused Adam on CPU")
def test_fused_plain_adam_is_bit_identical_to_torch_fused_adam() -> None:
    a, b = _nets()
    ours = PlainAdam(a.parameters(), lr=0.003, eps=1e-5, fused=True)
    theirs = torch.optim.Adam(b.parameters(), lr=0.003, eps=1e-5, fused=True)
    for step in range(20):
        x = torch.randn(16, 4)
        for group in (ours.param_groups[0], theirs.param_groups[0]):
            group["lr"] = 0.003 * (1 - step / 20)  # annealed as the trainer does
        _step(a, ours, x)
        _step(b, theirs, x)
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(pa, pb), step


@pytest.mark.skipif(not fused_available(), reason="torch has no fused Adam on CPU")
def test_a_torch_adam_checkpoint_resumes_in_plain_adam_and_back() -> None:
    """Runs saved before ppoqa dropped torch.optim resume with the same moments and step."""
    a, b = _nets()
    theirs = torch.optim.Adam(b.parameters(), lr=0.01, eps=1e-5, fused=True)
    for _ in range(3):
        _step(b, theirs, torch.randn(8, 4))
    a.load_state_dict(b.state_dict())
    ours = PlainAdam(a.parameters(), lr=0.01, eps=1e-5, fused=True)
    ours.load_state_dict(theirs.state_dict())
    assert ours.step_count == 3
    for _ in range(4):
        x = torch.randn(8, 4)
        _step(a, ours, x)
        _step(b, theirs, x)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    back = torch.optim.Adam(b.parameters(), lr=0.01, eps=1e-5, fused=True)
    back.load_state_dict(ours.state_dict())
    assert float(back.state_dict()["state"][0]["step"]) == 7.0


def test_building_the_gym_optimizer_does_not_import_dynamo() -> None:
    code = (
        "import sys, torch\n"
        "from ppo_cli.core.trainer import build_optimizer\n"
        "build_optimizer(torch.nn.Linear(2, 2), 1e-3, fused=True)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
