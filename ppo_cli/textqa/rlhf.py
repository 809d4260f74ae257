"""What turns token-level PPO into RLHF: a start from a trained run (`train --init-from`), a
frozen reference, and the per-token KL penalty toward it (as TRL's PPO trainer builds its
rewards)."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ppo_cli.config import Config
from ppo_cli.core.policy import ActorCritic
from ppo_cli.core.ppo import masked_mean
from ppo_cli.core.rundir import CHECKPOINT, load_checkpoint, run_env
from ppo_cli.errors import ConfigError, RunError
from ppo_cli.textqa.kl import KLController, kl_estimate, per_token_rewards
from ppo_cli.textqa.policies import build_policy


@dataclass
class InitRun:
    """A trained (PPO or SFT) text-QA run to start from."""

    path: Path
    kind: str  # "sft" or "ppo"
    spec: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    vocab: list[str]
    checkpoint_sha256: str

    def record(self) -> dict[str, Any]:
        return {
            "path": str(self.path.resolve()),
            "kind": self.kind,
            "checkpoint_sha256": self.checkpoint_sha256,
        }


def load_init_run(path: Path) -> InitRun:
    """The run --init-from names: a text-QA run directory with a checkpoint."""
    if not path.is_dir():
        what = "is a file, not a run directory" if path.exists() else "run directory not found"
        raise RunError(
            f"--init-from {path}: {what}", "pass a folder written by `ppoqa sft` or `ppoqa train`"
        )
    env = run_env(path)
    if env != "text-qa":
        raise RunError(
            f"--init-from {path}: is a run of {env}; RLHF starts from a text-QA run",
            "pass a run written by `ppoqa sft` or `ppoqa train` on a QA dataset",
        )
    ckpt = load_checkpoint(path)
    spec, state, vocab = ckpt.get("policy_spec"), ckpt.get("policy"), ckpt.get("vocab")
    if (
        not isinstance(spec, dict)
        or spec.get("kind") not in ("lstm", "transformer")
        or not isinstance(state, dict)
        or not isinstance(vocab, list)
    ):
        raise RunError(
            f"--init-from {path}: checkpoint holds no text policy",
            "pass a run written by `ppoqa sft` or `ppoqa train`",
        )
    digest = hashlib.sha256((path / CHECKPOINT).read_bytes()).hexdigest()
    kind = "sft" if ckpt.get("kind") == "sft" else "ppo"
    return InitRun(path, kind, dict(spec), state, [str(t) for t in vocab], digest)


def check_network(cfg: Config, init: InitRun) -> None:
    """The weights fit only the starting run's network (kind, width, answer vocabulary)."""
    theirs = {
        "policy": str(init.spec["kind"]),
        "hidden_size": int(init.spec["hidden_size"]),
        "answer_vocab": init.spec.get("answer_vocab") is not None,
        "answer_positions": init.spec.get("answer_positions") is not None,
    }
    asked = {"answer_positions": cfg.answer_vocab and cfg.answer_positions}
    for key, value in theirs.items():
        if asked.get(key, getattr(cfg, key)) != value:
            raise ConfigError(
                f"--init-from {init.path}: its network has {key}={value!r}, this run asks for "
                f"{getattr(cfg, key)!r}",
                f"drop --{key.replace('_', '-')}: a run started from another takes its network",
            )


def check_same_vocabulary(init: InitRun, itos: list[str], source: str) -> None:
    """Token ids are the network's input and output: another vocabulary means other words."""
    if list(init.vocab) == list(itos):
        return
    theirs, ours = set(init.vocab), set(itos)
    missing = sorted(ours - theirs)
    what = (
        f"{len(missing)} word(s) it never saw, e.g. {', '.join(missing[:3])}"
        if missing
        else "the same words in another order"
        if theirs == ours
        else f"{len(theirs - ours)} fewer word(s)"
    )
    raise ConfigError(
        f"--init-from {init.path}: its vocabulary ({len(init.vocab)} tokens) differs from "
        f"{source}'s ({len(itos)} tokens): {what}",
        "train on the dataset the run was trained on (leave out --dataset to use its own)",
    )


def init_policy(init: InitRun) -> ActorCritic:
    policy = build_policy(init.spec)
    try:
        policy.load_state_dict(init.state_dict)
    except RuntimeError as exc:
        raise RunError(
            f"--init-from {init.path}: checkpoint weights do not fit its network",
            "retrain that run",
        ) from exc
    return policy


class Reference:
    """A frozen copy of the starting policy: no gradients, never in the optimizer, eval mode."""

    def __init__(self, policy: ActorCritic) -> None:
        self.policy = copy.deepcopy(policy)
        self.policy.requires_grad_(False)
        self.policy.eval()

    @torch.no_grad()
    def logprobs(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log pi_ref(a_t | s_t), shaped like actions ([N, T] for text)."""
        return self.policy.evaluate(obs, actions)[0]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.policy.state_dict()


@dataclass
class KLStats:
    kl: float  # mean per-token KL estimate over the batch's real steps
    kl_episode: float  # mean over episodes of the summed per-token KL
    score: float  # mean episode score before the KL penalty
    kl_penalty: float  # mean episode penalty (kl_coef * summed KL), subtracted from the score
    kl_coef: float  # the coefficient in force for this iteration


def apply_kl_penalty(
    rollout: Any, reference: Reference, controller: KLController, estimator: str, in_reward: bool
) -> KLStats:
    """rewards <- score - kl_coef * KL_t at every real step of a TextRollout, the score kept in
    `rollout.scores`. in_reward=False (--kl-in loss, GRPO): the rewards stay the score and the
    reference's log-probabilities go to the loss; the KL is still measured, for the metrics
    and an adaptive coefficient."""
    mask = rollout.mask
    ref_logprob = reference.logprobs(rollout.tokens, rollout.actions)  # [N, T]
    # with the log-probabilities the rollout sampled with, as TRL does
    kl = kl_estimate(rollout.logprobs, ref_logprob, estimator) * mask  # [N, T]
    score = rollout.rewards * mask
    coef = controller.value
    rollout.scores, rollout.kl, rollout.kl_coef = score, kl, coef
    kl_sum = kl.sum(1)  # [N]
    if in_reward:
        rollout.rewards = per_token_rewards(score, kl, coef, mask)
    else:
        rollout.ref_logprobs = ref_logprob * mask
    return KLStats(
        kl=float(masked_mean(kl, mask)),
        kl_episode=float(kl_sum.mean()),
        score=float(score.sum(1).mean()),
        kl_penalty=float(coef * kl_sum.mean()) if in_reward else 0.0,
        kl_coef=coef,
    )
