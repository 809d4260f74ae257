"""Text QA behind the task seam trainer.train() drives (ppo_cli.kinds says what a task does)."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from ppo_cli.config import Config, has_reference
from ppo_cli.core.optim import PlainAdam
from ppo_cli.core.policy import ActorCritic
from ppo_cli.core.ppo import STATS, Batch, UpdateSettings, explained_variance, ppo_update
from ppo_cli.core.rundir import DATASET, VOCAB, atomic_write_text, write_yaml
from ppo_cli.core.session import BUDGET, SOLVED, STALLED, LoopState
from ppo_cli.core.trace import TraceRecorder
from ppo_cli.errors import DatasetError, RunError
from ppo_cli.textqa import estimators, rlhf
from ppo_cli.textqa.answer_memory import AnswerMemory
from ppo_cli.textqa.budget import (
    Plan,
    StallDetector,
    answer_words,
    default_iterations,
    default_stall_iterations,
    estimate_iterations,
    stall_min_gain,
)
from ppo_cli.textqa.curriculum import (
    Curriculum,
    balanced_questions,
    episodes_per_iteration,
    focused_questions,
)
from ppo_cli.textqa.data import END_ID, QADataset, Vocabulary, load_dataset, read_run_dataset
from ppo_cli.textqa.env import QATask, TextQAVecEnv
from ppo_cli.textqa.evaluate import (
    QAResult,
    accuracy,
    check_fits,
    eval_chunk,
    evaluate_qa,
    reward_spec,
)
from ppo_cli.textqa.kl import KLController
from ppo_cli.textqa.policies import build_policy
from ppo_cli.textqa.reward_fn import absolute_spec, load_reward_fn, record_reward_fn
from ppo_cli.textqa.rollout import TextRollout, collect_text_episodes
from ppo_cli.textqa.trace import group_trace, text_qa_trace

# Settings a text-QA run fills in when they are left unset (None), so config.yaml names what
# it really used (resolve_run); is_run_of matches them (a sweep resuming its seeds relies on it).
FILLED_BY_RUN = ("iterations", "stall_iterations", "reward", "dataset", "init_from")


def is_run_of(wanted: Config, recorded: Config) -> bool:
    """Whether a run recorded with `recorded` is the run `wanted` asks for: the two resolved
    configs agree, a setting `wanted` leaves unset matching whatever the run filled in, and a
    --reward-fn FILE.py:NAME matching its absolute form."""
    mine, theirs = wanted.to_dict(), recorded.to_dict()
    for key in FILLED_BY_RUN:
        if mine.get(key) is None:
            mine[key] = theirs.get(key)
    for key in ("dataset", "init_from"):
        for d in (mine, theirs):
            if d.get(key) is not None:
                d[key] = str(Path(d[key]).resolve())
    if mine.get("reward_fn") is not None:
        mine["reward_fn"] = absolute_spec(mine["reward_fn"])
    return mine == theirs


# An iteration's memory that is refused before any folder is made: one step of its rollout
# computes [episodes, vocabulary] logits and a few temporaries of that size; the recurrent
# network keeps about 8 * hidden_size floats per token of every episode for the backward pass.
MAX_STEP_BYTES = 4_000_000_000


def answer_positions(task: QATask) -> list[list[int]]:
    """Per answer step k, the ids some target has as token k, and <END> where one ends."""
    steps: list[set[int]] = [set() for _ in range(task.max_answer_tokens + 1)]
    for ids, n in zip(task.targets.tolist(), task.target_len.tolist(), strict=True):
        for k, token in enumerate([*ids[:n], END_ID]):
            steps[k].add(token)
    return [sorted(ids) for ids in steps]


def resolve_run(
    cfg: Config, resume_dir: Path | None, progress: Callable[[str], None] | None
) -> tuple[Config, QADataset, rlhf.InitRun | None, Any]:
    """The run's final Config, its dataset, the --init-from run and the --reward-fn function.
    What the settings leave unset is filled in from the data, so config.yaml names what the run
    really uses: the --init-from run's own dataset, the iteration cap and the stall patience
    for the dataset's size (ppo_cli.textqa.budget), the reward the dataset names; the paths are
    made absolute (a resume may start elsewhere)."""
    init = None
    if resume_dir is None and cfg.init_from is not None:
        init = rlhf.load_init_run(Path(cfg.init_from))
        rlhf.check_network(cfg, init)
    # a resumed run, or one started from a run without --dataset, trains on that run's copy
    run_copy = resume_dir or (init.path if init is not None and cfg.dataset is None else None)
    if run_copy:
        hint = "resume only a run directory made by `ppoqa train`"
        dataset = read_run_dataset(run_copy / DATASET, hint)
    else:
        dataset = load_dataset(cfg.dataset, progress)
    reward_fn, derived = None, {}
    if cfg.reward_fn is not None:
        reward_fn = load_reward_fn(cfg.reward_fn)
        if resume_dir is None:
            derived["reward_fn"] = absolute_spec(cfg.reward_fn)
    if init is not None:
        derived["init_from"] = str(init.path.resolve())
        if cfg.dataset is None:
            derived["dataset"] = str((init.path / DATASET).resolve())
    derived["iterations"] = cfg.iterations or default_iterations(answer_words(dataset))
    if cfg.stall_iterations is None:
        derived["stall_iterations"] = default_stall_iterations(len(dataset.pairs))
    derived["reward"] = reward_spec(cfg, dataset).name
    return replace(cfg, **derived), dataset, init, reward_fn


class TextRunTask:
    """What PPO and supervised (ppo_cli.textqa.sft) text-QA runs share: the network over the
    dataset's vocabulary, the run folder's copies of both, and greedy evaluation."""

    fused_adam = False  # the recorded text-QA results were made with the plain Adam
    cfg: Config
    dataset: QADataset
    fingerprint: str | None
    qa: QATask

    def build(self) -> ActorCritic:
        """The env and the network; may still refuse the dataset (before any folder exists)."""
        cfg, dataset = self.cfg, self.dataset
        vocab = Vocabulary.from_dataset(dataset)
        episodes = episodes_per_iteration(cfg.num_episodes, len(dataset.pairs))
        need = 12 * episodes * len(vocab)
        if need > MAX_STEP_BYTES:
            raise DatasetError(
                f"{dataset.source}: {len(dataset.pairs):,} pairs with a {len(vocab):,}-word "
                f"vocabulary: an iteration of {episodes:,} episodes needs about "
                f"{need / 1e9:,.1f} GB of memory per step, more than the limit of "
                f"{MAX_STEP_BYTES / 1e9:.0f} GB",
                f"pass --num-episodes {max(1, MAX_STEP_BYTES // (12 * len(vocab)))} or fewer, "
                "or train on fewer pairs",
            )
        self.qa = task = QATask(dataset, vocab, reward_spec(cfg, dataset), cfg.max_answer_tokens)
        seq_len = task.prompt_len + task.max_steps  # one question of millions of words: GBs
        need = 32 * episodes * seq_len * cfg.hidden_size
        if need > MAX_STEP_BYTES:
            longest = max(1, MAX_STEP_BYTES // (32 * episodes * cfg.hidden_size))
            raise DatasetError(
                f"{dataset.source}: the longest question plus its answer is {seq_len:,} tokens: "
                f"{episodes:,} episodes of it need about {need / 1e9:,.1f} GB of memory, more "
                f"than the limit of {MAX_STEP_BYTES / 1e9:.0f} GB",
                f"keep questions under {longest:,} tokens, or pass fewer --num-episodes",
            )
        spec = dict(kind=cfg.policy, vocab_size=len(vocab), hidden_size=cfg.hidden_size)
        if cfg.answer_vocab:  # generate only words that occur in some answer
            spec["answer_vocab"] = sorted({int(t) for t in task.targets[task.target_valid]})
            if cfg.answer_positions:
                spec["answer_positions"] = answer_positions(task)
        policy = build_policy(spec)
        check_fits(policy, task.prompt_len, task.max_steps, dataset.source)
        return policy

    def update_settings(self) -> UpdateSettings:
        return UpdateSettings.from_config(self.cfg)

    def prepare_run(
        self, run_dir: Path, state: LoopState, ckpt: dict[str, Any] | None, warn: Any
    ) -> None:
        if ckpt is None:  # a new run: ask and eval read these copies
            write_yaml(run_dir / DATASET, self.dataset.to_dict())
            atomic_write_text(run_dir / VOCAB, json.dumps(self.qa.vocab.itos, ensure_ascii=False))

    def checkpoint_extras(self, state: LoopState) -> dict[str, Any]:
        return {
            "vocab": list(self.qa.vocab.itos),
            "dataset_fingerprint": self.fingerprint,
            "env": self.cfg.env,
        }

    def greedy(
        self, policy: ActorCritic, record: dict[str, Any], state: LoopState
    ) -> list[QAResult]:
        """Greedy answers to every question, the run's latest results."""
        results = evaluate_qa(policy, self.qa)
        record["eval_accuracy"] = state.accuracy = accuracy(results)
        state.results = [r.to_dict() for r in results]
        return results

    def close(self) -> None: ...


class TextQATask(TextRunTask):
    """One episode per question, one step per generated token; greedy evaluation each
    eval_every iterations, an early stop at target_accuracy, an optional curriculum."""

    def __init__(
        self, cfg: Config, resume_dir: Path | None, progress: Callable[[str], None] | None = None
    ) -> None:
        cfg, self.dataset, self.init, self.reward_fn = resolve_run(cfg, resume_dir, progress)
        self.cfg = cfg  # final: nothing below changes it
        self.fingerprint: str | None = self.dataset.fingerprint()
        self.total = cfg.iterations
        self.may_stop_early = cfg.target_accuracy is not None

    def build(self) -> ActorCritic:
        cfg = self.cfg
        policy = super().build()
        if self.init is not None:
            rlhf.check_same_vocabulary(self.init, self.qa.vocab.itos, self.dataset.source)
            policy.load_state_dict(rlhf.init_policy(self.init).state_dict())
        self.qa.score_fn = self.reward_fn
        # The reference: a frozen copy of the starting policy (the --init-from run's, or the
        # fresh network's); kept in the checkpoint so a resumed run compares with the same one.
        self.reference = rlhf.Reference(policy) if has_reference(cfg) else None
        self.controller = KLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
        # the critic-free estimators neither run nor train the value head
        policy.use_critic = cfg.advantage in estimators.CRITIC  # type: ignore[assignment]
        # Off with --reward-fn: the memory would replay whatever the user's function scores
        # best, the very answers the RLHF walkthrough shows the KL penalty holding back.
        self.memory = None
        if cfg.answer_memory and self.reward_fn is None:
            columns = policy.decision_columns()  # type: ignore[operator]
            self.memory = AnswerMemory(self.qa.num_questions, self.qa.max_steps, columns)
        return policy

    def update_settings(self) -> UpdateSettings:
        """The critic-free estimators train no value head; --kl-in loss adds the KL term."""
        cfg = self.cfg
        return replace(
            super().update_settings(),
            use_critic=cfg.advantage in estimators.CRITIC,
            kl_loss_coef=cfg.kl_coef if cfg.kl_in == "loss" else 0.0,
        )

    def plan(self, policy: ActorCritic) -> Plan:
        """The run's expected cost, from a timed rehearsal of part of an iteration on a copy
        of the network (the run's own random numbers are left as they were)."""
        cfg, qa = self.cfg, self.qa
        episodes = episodes_per_iteration(cfg.num_episodes, qa.num_questions)
        n = min(episodes, 512)  # episodes the timed rehearsal collects and learns from
        settings = self.update_settings()
        minibatches = max(1, round(settings.num_minibatches * n / episodes))
        with torch.random.fork_rng():
            clone = copy.deepcopy(policy)
            start = time.perf_counter()
            rollout = collect_text_episodes(
                clone, TextQAVecEnv(qa), balanced_questions(qa.num_questions, n)
            )
            collected = time.perf_counter()
            batch, _ = rollout.to_batch(cfg.gamma, cfg.gae_lambda)
            optimizer = PlainAdam(clone.parameters(), lr=cfg.learning_rate, eps=1e-5)
            ppo_update(clone, optimizer, batch, replace(settings, num_minibatches=minibatches))
            done = time.perf_counter()
        forward, update = (collected - start) / n, (done - collected) / n
        # probes run for the unsolved questions: all at first, none at the end
        probes = cfg.probes * qa.num_questions / 2 if self.memory is not None else 0
        per_iteration = episodes * (forward + update) + (probes + qa.num_questions) * forward
        words = answer_words(self.dataset)
        return Plan(
            source=Path(self.dataset.source).name,
            pairs=qa.num_questions,
            answer_words=words,
            # a run that never stops early (RLHF) runs all its iterations
            estimated_iterations=estimate_iterations(words) if self.may_stop_early else self.total,
            cap=self.total,
            seconds_per_iteration=per_iteration,
        )

    def prepare_run(
        self, run_dir: Path, state: LoopState, ckpt: dict[str, Any] | None, warn: Any
    ) -> None:
        """A new run's files, or a resumed run's extra state (and the refusal of one that
        reached its target)."""
        cfg = self.cfg
        super().prepare_run(run_dir, state, ckpt, warn)
        if ckpt is not None and self.reference is not None:
            if not isinstance(ckpt.get("reference"), dict):
                raise RunError(f"{run_dir}: checkpoint has no reference policy", "start a new run")
            self.reference.policy.load_state_dict(ckpt["reference"])
        if ckpt is not None and self.memory is not None:
            if not isinstance(ckpt.get("answer_memory"), dict):
                raise RunError(f"{run_dir}: checkpoint has no answer memory", "start a new run")
            self.memory.load_state_dict(ckpt["answer_memory"])
        if ckpt is not None and state.kl_coef is not None:
            self.controller.value = state.kl_coef
        if self.reward_fn is not None:
            record_reward_fn(run_dir, self.reward_fn, warn)
        state.kl_coef = self.controller.value if self.reference is not None else None
        if (
            ckpt is not None
            and state.stopped_early
            and cfg.target_accuracy is not None
            and state.accuracy is not None
            and state.accuracy >= cfg.target_accuracy
        ):
            raise RunError(
                f"{run_dir}: the run already reached --target-accuracy "
                f"{cfg.target_accuracy:g} at iteration {state.iteration}",
                "to train further, pass --no-early-stop (or a higher --target-accuracy)",
            )
        state.finished = state.stopped_early = False
        if state.stop_reason == STALLED:  # asked to go on: the full patience again
            state.progress_iteration = state.iteration
        state.stop_reason, state.stop_message = None, ""

    def longer(self, state: LoopState) -> str:
        """The flag that would let a finished run train further."""
        return f"--iterations {state.iteration + 1}"

    def training_spec(self) -> dict[str, Any]:
        """Everything about the data and the reward that changes what the run learns, as
        plain values: a resume refuses a run whose dataset.yaml (pairs, levels, rewards,
        reward name, max_answer_tokens) or reward settings changed since its checkpoint."""
        d, cfg = self.dataset, self.cfg
        levels = json.dumps([p.level for p in d.pairs])
        reward = asdict(self.qa.rewards)
        return {
            "pairs": d.fingerprint(),
            "levels": hashlib.sha256(levels.encode()).hexdigest()[:16],
            "max_answer_tokens": int(self.qa.max_answer_tokens),
            "reward": str(reward.pop("name")),
            **{f"rewards.{k}": None if v is None else float(v) for k, v in reward.items()},
            "answer_vocab": bool(cfg.answer_vocab),
            "answer_positions": bool(cfg.answer_positions),
            "curriculum": bool(cfg.curriculum),
            "curriculum_threshold": float(cfg.curriculum_threshold),
            "reward_fn": str(cfg.reward_fn),
        }

    def checkpoint_extras(self, state: LoopState) -> dict[str, Any]:
        return {
            **super().checkpoint_extras(state),
            "training_spec": self.training_spec(),
            **({"reference": self.reference.state_dict()} if self.reference else {}),
            **({"answer_memory": self.memory.state_dict()} if self.memory else {}),
            **({"init_from": self.init.record()} if self.init is not None else {}),
        }

    def start(self, state: LoopState) -> None:
        self.venv = TextQAVecEnv(self.qa)
        # whole groups: each sampled question gets --group-size completions side by side
        episodes = episodes_per_iteration(self.cfg.num_episodes, self.qa.num_questions)
        self.num_episodes = -(-episodes // self.cfg.group_size) * self.cfg.group_size
        # --focus-unsolved reads the last greedy answers (kept in the checkpoint for a resume).
        # Off with --reward-fn: "wrong" means wrong against the dataset's answers, which a
        # run scored by its own function must not see (the RLHF walkthrough's gold accuracy).
        self.focus = self.cfg.focus_unsolved > 0 and self.reward_fn is None
        self.last_correct: list[bool] = [bool(r.get("correct")) for r in state.results]
        # (iteration, weights, greedy answers) of the best evaluation so far (end_on_best)
        self.best: tuple[int, dict[str, torch.Tensor], list[QAResult]] | None = None
        self.curriculum = None
        if self.cfg.curriculum:
            levels = [p.level for p in self.dataset.pairs]
            self.curriculum = Curriculum(levels, self.cfg.curriculum_threshold)
            self.curriculum.stage = state.curriculum_stage
        assert self.cfg.stall_iterations is not None
        self.stall = StallDetector(
            self.cfg.stall_iterations,
            state.best_accuracy,
            state.best_iteration,
            stall_min_gain(self.qa.num_questions),
            state.progress_accuracy,
            state.progress_iteration,
        )

    def collect(self, policy: ActorCritic) -> tuple[TextRollout, Batch, torch.Tensor]:
        slots = self.num_episodes // self.cfg.group_size  # questions asked, each group_size times
        if self.curriculum is not None:  # only the active levels' questions
            q_idx = self.curriculum.sample(slots)
        elif self.focus and len(self.last_correct) == self.qa.num_questions:
            correct = torch.tensor(self.last_correct, dtype=torch.bool)
            q_idx = focused_questions(correct, slots, self.cfg.focus_unsolved)
        else:
            q_idx = balanced_questions(self.qa.num_questions, slots)
        q_idx = q_idx.repeat_interleave(self.cfg.group_size)  # [N], a group's completions together
        self.groups = estimators.group_ids(slots, self.cfg.group_size)  # [N]
        rollout = collect_text_episodes(policy, self.venv, q_idx)
        self.probe_count = 0
        if self.memory is not None:
            rollout = self.remember(policy, rollout)
        self.kl_stats = None
        if self.reference is not None:  # rewards <- score - kl_coef * KL_t, or the loss's
            self.kl_stats = rlhf.apply_kl_penalty(
                rollout, self.reference, self.controller, self.cfg.kl_estimator,
                in_reward=self.cfg.kl_in != "loss",
            )  # fmt: skip
        batch, deltas = rollout.to_batch(self.cfg.gamma, self.cfg.gae_lambda)
        self.estimate(rollout, batch)
        return rollout, batch, deltas

    def estimate(self, rollout: TextRollout, batch: Batch) -> None:
        """Replace GAE's advantages by the chosen critic-free estimator's (textqa.estimators);
        with --kl-in loss, hand the reference's log-probabilities to the update."""
        batch.ref_logprobs = rollout.ref_logprobs
        name = self.cfg.advantage
        if name == "gae":  # to_batch's numbers, unchanged
            return
        # a run of the first release's `group` groups by question, as it always did; a
        # replayed answer joins the group of its question
        groups = (
            rollout.question_idx
            if name == "group"
            else estimators.extend_groups(self.groups, rollout.question_idx)
        )
        est = estimators.compute(name, rollout.rewards, rollout.mask, groups)
        batch.advantages, batch.returns = est.advantages, est.returns

    def remember(self, policy: ActorCritic, rollout: TextRollout) -> TextRollout:
        """Update the answer memory from the samples and this iteration's probes; returns the
        rollout with the remembered answers that beat every new sample appended."""
        memory = self.memory
        assert memory is not None
        returns = rollout.episode_returns
        memory.observe(rollout.question_idx, returns, rollout.actions, rollout.exact)
        if self.cfg.probes > 0:
            # a few thousand probes at a time: their temporaries stay small next to the model
            rows = min(2048, eval_chunk(len(self.qa.vocab)))
            for chunk in self.unsolved().split(max(1, rows // (self.cfg.probes + 2))):
                if chunk.numel() == 0:
                    continue
                logits = policy.first_logits(self.qa.prompts[chunk])  # type: ignore[operator]
                q, force = memory.probe_force(chunk, logits, self.cfg.probes, self.qa.max_steps)
                if q.numel():
                    probes = collect_text_episodes(policy, self.venv, q, force=force)
                    memory.observe(q, probes.episode_returns, probes.actions, probes.exact)
                    self.probe_count += q.numel()
        replay = memory.replay_questions(rollout.question_idx, returns)
        if replay.numel() == 0:
            return rollout
        force = memory.best_actions[replay]
        return rollout.cat(collect_text_episodes(policy, self.venv, replay, force=force))

    def unsolved(self) -> torch.Tensor:
        """The questions the last greedy evaluation got wrong (all before the first), among
        the curriculum's active ones."""
        pool = self.curriculum.active if self.curriculum else torch.arange(self.qa.num_questions)
        if len(self.last_correct) == self.qa.num_questions:
            pool = pool[~torch.tensor(self.last_correct, dtype=torch.bool)[pool]]
        return pool

    def record(
        self, iteration: int, state: LoopState, ro: TextRollout, batch: Batch, stats: Any, lr: float
    ) -> dict[str, Any]:
        # the statistics of what the policy sampled, not of the replays after it
        sampled = slice(0, ro.num_episodes)
        record = {
            "iteration": iteration,
            "episodes": state.episodes + ro.num_episodes,
            "steps": state.steps + ro.num_steps,
            "mean_reward": float(ro.episode_returns[sampled].mean()),
            "train_accuracy": float(ro.exact[sampled].float().mean()),
            "mean_length": float(ro.mask[sampled].sum(1).float().mean()),
            **{k: stats[k] for k in (*STATS, "epoch_losses")},
            "learning_rate": lr,
            "explained_variance": (
                explained_variance(ro.values, batch.returns, ro.mask)
                if self.cfg.advantage == "gae"
                else None  # no critic
            ),
            **estimators.trl_metrics(ro, stats, self.groups if self.cfg.group_size > 1 else None),
        }
        if "kl_loss" in stats:
            record["kl_loss"] = stats["kl_loss"]
        if self.memory is not None:
            state.probe_episodes += self.probe_count
            record["replayed_episodes"] = ro.num_replayed
            record["probe_episodes"] = state.probe_episodes
            record["memory_exact"] = round(self.memory.exact_share, 4)
        if self.kl_stats is not None:
            record.update(asdict(self.kl_stats))
            # adapt for the next iteration (a fixed coefficient stays as it is)
            state.kl_coef = self.controller.update(self.kl_stats.kl, ro.num_episodes)
        return record

    def evaluate(
        self, policy: ActorCritic, iteration: int, record: dict[str, Any], state: LoopState
    ) -> tuple[list[QAResult] | None, bool]:
        """Greedy answers when due; returns them and whether training reached its target."""
        cfg = self.cfg
        if not (iteration % cfg.eval_every == 0 or iteration == self.total):
            return None, False
        results = self.greedy(policy, record, state)
        self.last_correct = [r.correct for r in results]
        if self.curriculum is not None:
            record.update(self.curriculum.observe(self.last_correct))
            state.curriculum_stage = self.curriculum.stage
        reached = (
            cfg.target_accuracy is not None
            and state.accuracy >= cfg.target_accuracy
            and (self.curriculum is None or self.curriculum.complete)
        )
        # Which rule ends the run (ppo_cli.textqa.budget): solved, stalled, or the iteration cap.
        self.stall.observe(iteration, state.accuracy)
        if self.stall.best_iteration == iteration:  # a new best: the weights a stall ends with
            weights = {k: v.detach().clone() for k, v in policy.state_dict().items()}
            self.best = (iteration, weights, results)
        state.best_accuracy, state.best_iteration = self.stall.best, self.stall.best_iteration
        state.progress_accuracy = self.stall.progress
        state.progress_iteration = self.stall.progress_iteration
        stalled = not reached and iteration < self.total and self.stall.stalled(iteration)
        if reached:
            state.stop_reason = SOLVED
            state.stop_message = (
                f"solved: greedy accuracy {100 * state.accuracy:.1f}% reached the target at "
                f"iteration {iteration}"
            )
        elif stalled:
            state.stop_reason, state.stop_message = STALLED, self.stall.describe(iteration)
            results = self.end_on_best(policy, state, results)
        elif iteration == self.total:
            # Without an early stop, running every iteration is the plan, not a shortfall.
            state.stop_reason = BUDGET
            now = (
                f"greedy accuracy {100 * state.accuracy:.1f}% (best {100 * self.stall.best:.1f}% "
                f"at iteration {self.stall.best_iteration})"
            )
            state.stop_message = (
                f"done: ran all {self.total} iterations (no early stop), {now}"
                if cfg.target_accuracy is None
                else f"budget: all {self.total} iterations used, {now}; pass --iterations to "
                "train longer"
            )
        return results, reached or stalled

    def end_on_best(
        self, policy: ActorCritic, state: LoopState, results: list[QAResult]
    ) -> list[QAResult]:
        """A stalled run ends with the weights of its best greedy evaluation: on a plateau each
        update flips a few answers near their boundary, so the last iteration is a noisy sample.
        Not a run that used its iterations: --resume with more continues it exactly."""
        if self.best is None or accuracy(self.best[2]) <= state.accuracy:
            return results
        iteration, weights, results = self.best
        policy.load_state_dict(weights)
        state.accuracy, state.results = accuracy(results), [r.to_dict() for r in results]
        self.last_correct = [r.correct for r in results]
        kept = f"; kept iteration {iteration}'s weights ({100 * state.accuracy:.1f}%)"
        state.stop_message += kept
        return results

    def action_label(self, action: torch.Tensor) -> str:
        return self.qa.vocab.itos[action]

    def trace(
        self,
        iteration: int,
        ro: TextRollout,
        batch: Batch,
        deltas: torch.Tensor,
        rec: TraceRecorder,
    ) -> dict[str, Any]:
        questions = [p.question for p in self.dataset.pairs]
        itos = self.qa.vocab.itos
        record = text_qa_trace(
            iteration, ro, batch, deltas, rec, itos, questions, self.cfg.norm_adv
        )
        if self.cfg.group_size > 1:  # the completions of a question side by side
            record["completion_groups"] = group_trace(
                ro, batch, self.groups, itos, questions, self.cfg.advantage
            )
        return record

    def summary(self, policy: ActorCritic, state: LoopState) -> dict[str, Any]:
        if not state.results:  # the last iteration always evaluates; this is for 0 iterations
            self.greedy(policy, {}, state)
        return {}
