"""The run directory contract: checkpoints round-trip, bad ones are refused, newest run wins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ppo_cli.core.rundir import CHECKPOINT, find_run, load_checkpoint, save_checkpoint
from ppo_cli.errors import RunError
from ppo_cli.textqa.policies import build_policy


class NotAllowed:
    """Any object outside torch's weights_only allow-list."""


def test_checkpoint_round_trip_rebuilds_the_same_network(tmp_path: Path) -> None:
    torch.manual_seed(0)
    policy = build_policy({"kind": "lstm", "vocab_size": 12, "hidden_size": 8})
    save_checkpoint(tmp_path, {"policy_spec": policy.spec(), "policy": policy.state_dict()})
    ckpt = load_checkpoint(tmp_path)
    again = build_policy(dict(ckpt["policy_spec"]))
    again.load_state_dict(ckpt["policy"])
    tokens = torch.tensor([[0, 4, 5, 1]])
    torch.testing.assert_close(
        again.logits_values(tokens, None), policy.logits_values(tokens, None)
    )
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT]  # no temp files left behind


def test_a_checkpoint_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    torch.save({"format_version": 1, "payload": NotAllowed()}, tmp_path / CHECKPOINT)
    with pytest.raises(RunError, match="refused"):
        load_checkpoint(tmp_path)


def test_a_truncated_checkpoint_is_a_run_error(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, {"weights": torch.zeros(1000)})
    full = (tmp_path / CHECKPOINT).read_bytes()
    (tmp_path / CHECKPOINT).write_bytes(full[: len(full) // 2])  # e.g. a copy cut short
    with pytest.raises(RunError, match="truncated or corrupted"):
        load_checkpoint(tmp_path)


def test_a_missing_checkpoint_is_a_run_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no checkpoint.pt") as info:
        load_checkpoint(tmp_path)
    assert "ppoqa train" in info.value.hint


def test_find_run_picks_the_newest_finished_run(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for i, name in enumerate(("b-old", "a-new", "c-unfinished")):
        (root / name).mkdir(parents=True)
        if name != "c-unfinished":
            (root / name / CHECKPOINT).write_bytes(b"x")
            os.utime(root / name / CHECKPOINT, (1000 + i, 1000 + i))
    assert find_run(None, root) == root / "a-new"
    assert find_run(root / "b-old", root) == root / "b-old"
    with pytest.raises(RunError, match="no trained run found") as info:
        find_run(None, tmp_path / "elsewhere")
    assert "ppoqa train" in info.value.hint
