"""train(): seed -> envs -> loop(rollout -> GAE -> PPO update -> greedy eval) -> run directory.

The core reports through plain callbacks (dicts and dataclasses), so the CLI can draw progress
bars and tables while tests and library users need no terminal.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppo_cli.checkpointing import (
    TrainingSession,
    check_finite_metrics,
    check_finite_parameters,
    load_resume_checkpoint,
    restore_training_state,
    training_state,
)
from ppo_cli.config import Config, config_to_yaml, validate
from ppo_cli.curriculum import Curriculum
from ppo_cli.data import QADataset, Vocabulary, load_dataset, parse_dataset
from ppo_cli.envs.text_qa_vec import QATask, TextQAVecEnv
from ppo_cli.errors import ConfigError, RunError, TrainingError, UsageError
from ppo_cli.evaluate import QAResult, accuracy, check_fits, evaluate_qa, reward_spec
from ppo_cli.kl import KLController
from ppo_cli.policies import ActorCritic, build_policy
from ppo_cli.ppo import UpdateSettings, explained_variance, ppo_update
from ppo_cli.rollout import collect_text_episodes
from ppo_cli.rundir import (
    CONFIG,
    DATASET,
    METRICS,
    VOCAB,
    append_metrics,
    atomic_write_text,
    new_run_dir,
    prepare_run_dir,
    truncate_metrics,
    write_yaml,
)


@dataclass
class TrainResult:
    """The seed's "training math" for the run that really happened."""

    run_dir: Path
    env: str
    iterations: int
    episodes: int
    steps: int
    epochs: int
    gradient_updates: int
    wall_seconds: float
    final_accuracy: float | None = None
    final_results: list[QAResult] = field(default_factory=list)
    mean_return: float | None = None
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "final_results"}
        d["run_dir"] = str(self.run_dir)
        d["wall_seconds"] = round(self.wall_seconds, 3)
        d["final_results"] = [r.to_dict() for r in self.final_results]
        return d


class Callbacks:
    """Hooks the CLI overrides; every method gets plain data."""

    def on_start(self, cfg: Config, run_dir: Path, total: int) -> None: ...
    def on_iteration(self, record: dict[str, Any]) -> None: ...
    def on_eval(self, iteration: int, results: list[QAResult]) -> None: ...
    def wants_trace(self, iteration: int, total: int) -> bool:
        """Whether to record a trace of this iteration's update (see ppo_cli.trace)."""
        return False

    def on_trace(self, record: dict[str, Any]) -> None: ...

    def on_warning(self, message: str) -> None:
        sys.stderr.write(f"ppoqa: warning: {message}\n")
        sys.stderr.flush()


def seed_everything(seed: int, threads: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available", "use --device cpu")
    return torch.device(name)


def episodes_per_iteration(cfg: Config, num_questions: int) -> int:
    """cfg.num_episodes, or 8 episodes per question (at least 64) when it is left unset."""
    if cfg.num_episodes is not None:
        return cfg.num_episodes
    return max(64, 8 * num_questions)


def balanced_questions(num_questions: int, num_episodes: int) -> torch.Tensor:
    """Every question equally often (up to one), in random order: lower-variance batches."""
    reps = -(-num_episodes // num_questions)
    return torch.cat([torch.randperm(num_questions) for _ in range(reps)])[:num_episodes]


def build_text_setup(cfg: Config, dataset: QADataset) -> tuple[QATask, ActorCritic]:
    vocab = Vocabulary.from_dataset(dataset)
    task = QATask(dataset, vocab, reward_spec(cfg, dataset), cfg.max_answer_tokens)
    spec: dict[str, Any] = {
        "kind": cfg.policy,
        "vocab_size": len(vocab),
        "hidden_size": cfg.hidden_size,
    }
    if cfg.answer_vocab:  # issue 6: generate only words that occur in some answer
        spec["answer_vocab"] = sorted({int(t) for t in task.targets[task.target_valid]})
    policy = build_policy(spec)
    check_fits(policy, task.prompt_len, task.max_steps, dataset.source)
    return task, policy


def train(
    cfg: Config,
    run_dir: Path | None = None,
    callbacks: Callbacks | None = None,
    *,
    resume: bool = False,
) -> TrainResult:
    """Train on cfg.env and write a run directory; text QA here, gymnasium ids elsewhere.

    resume=True continues the run in run_dir from its checkpoint (cfg: resume_config()).
    """
    validate(cfg)
    if resume and run_dir is None:
        raise UsageError("resuming needs the run directory", "ppoqa train --resume DIR")
    cb: Callbacks = callbacks or Callbacks()
    if cfg.tensorboard:  # a writer wrapped around the caller's callbacks
        from ppo_cli.tensorboard import TensorBoardCallbacks

        cb = TensorBoardCallbacks(cb)  # type: ignore[assignment]
    try:
        if not cfg.is_text_qa:
            from ppo_cli.gym_trainer import train_gym

            return train_gym(cfg, run_dir, cb, resume=resume)
        return train_text_qa(cfg, run_dir, cb, resume=resume)
    finally:
        if cfg.tensorboard:
            cb.close()  # type: ignore[attr-defined]


@dataclass
class TextLoopState:
    """Everything the text-QA loop carries from one iteration to the next (besides the
    policy, the optimizer and the RNGs): what a checkpoint must hold to resume exactly."""

    iteration: int = 0
    episodes: int = 0
    steps: int = 0
    epochs: int = 0
    gradient_updates: int = 0
    wall_seconds: float = 0.0
    accuracy: float | None = None  # of the last greedy evaluation
    results: list[dict[str, Any]] = field(default_factory=list)  # its QAResult dicts
    stopped_early: bool = False
    finished: bool = False
    curriculum_stage: int = 0  # --curriculum: index of the hardest active level
    kl_coef: float | None = None  # RLHF: the KL coefficient in force (adaptive with kl_target)

    @classmethod
    def from_counters(cls, counters: dict[str, Any]) -> TextLoopState:
        known = {k: v for k, v in counters.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _load_run_dataset(run_dir: Path) -> QADataset:
    """A resumed run trains on its own copy of the dataset, not on the original file."""
    path = run_dir / DATASET
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(
            f"{path}: missing or unreadable", "resume only a run directory made by `ppoqa train`"
        ) from exc
    return parse_dataset(text, str(path))


def _record_reward_fn(run_dir: Path, reward_fn: Any, cb: Callbacks) -> None:
    """reward_fn.json: which function scored the run, from which file (sha256); a resume with
    a changed file warns and records both hashes."""
    from ppo_cli.reward_fn import RECORD, warn_if_changed

    path = run_dir / RECORD
    doc = reward_fn.record()
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if isinstance(old, dict):
            message = warn_if_changed(old, reward_fn)
            if message:
                cb.on_warning(message)
                doc["previous_sha256"] = [*old.get("previous_sha256", []), old.get("sha256")]
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


def train_text_qa(
    cfg: Config, run_dir: Path | None, cb: Callbacks, resume: bool = False
) -> TrainResult:
    if cfg.policy == "mlp":
        raise ConfigError("--policy mlp is for gymnasium environments", "use lstm or transformer")
    if cfg.device == "cuda":
        # Honest about it rather than silently ignoring the flag: the text-QA networks are tiny
        # and step one token at a time, where a GPU's launch overhead outweighs its speed.
        raise ConfigError(
            "--device cuda: text QA trains on the CPU only", "drop --device (auto means cpu here)"
        )
    from ppo_cli import rlhf

    init = None
    if resume:
        assert run_dir is not None
        dataset = _load_run_dataset(run_dir)
    elif cfg.init_from is not None:
        init = rlhf.load_init_run(Path(cfg.init_from))
        rlhf.check_network(cfg, init)
        if cfg.dataset is None:  # the starting run's own dataset
            cfg = replace(cfg, dataset=str((init.path / DATASET).resolve()))
            dataset = _load_run_dataset(init.path)
        else:
            dataset = load_dataset(cfg.dataset)
        cfg = replace(cfg, init_from=str(init.path.resolve()))
    else:
        dataset = load_dataset(cfg.dataset)
    reward_fn = None
    if cfg.reward_fn is not None:
        from ppo_cli.reward_fn import absolute_spec, load_reward_fn

        reward_fn = load_reward_fn(cfg.reward_fn)
        if not resume:  # config.yaml names the file absolutely: a resume may start elsewhere
            cfg = replace(cfg, reward_fn=absolute_spec(cfg.reward_fn))
    if cfg.kl_target is not None and cfg.kl_coef <= 0:
        raise ConfigError(
            "--kl-target adapts --kl-coef multiplicatively: it needs a starting --kl-coef > 0",
            "e.g. --kl-coef 0.2 --kl-target 0.05",
        )
    seed_everything(cfg.seed, cfg.threads)
    task, policy = build_text_setup(cfg, dataset)  # may still refuse the dataset: no folder yet
    if cfg.reward != task.rewards.name:  # config.yaml names the reward the run really used
        cfg = dataclasses.replace(cfg, reward=task.rewards.name)
    if init is not None:
        rlhf.check_same_vocabulary(init, task.vocab.itos, dataset.source)
        policy.load_state_dict(rlhf.init_policy(init).state_dict())
    task.score_fn = reward_fn
    # The reference: a frozen copy of the starting policy (the --init-from run's, or the fresh
    # network's); kept in the checkpoint so a resumed run compares with the same one.
    reference = None
    if cfg.init_from is not None or cfg.kl_coef > 0:
        reference = rlhf.Reference(policy)
    controller = KLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
    run_dir = prepare_run_dir(run_dir or new_run_dir(cfg.env, cfg.seed))
    with TrainingSession(run_dir, cfg.save_every, resume, cb.on_warning) as session:
        optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate, eps=1e-5)
        settings = UpdateSettings.from_config(cfg)
        state = TextLoopState()
        if resume:
            ckpt = load_resume_checkpoint(run_dir, dataset.fingerprint())
            if ckpt.get("kind") == "sft":
                raise RunError(
                    f"{run_dir}: is a supervised (ppoqa sft) run, not a PPO run to resume",
                    f"start PPO from it: ppoqa train --init-from {run_dir}",
                )
            state = TextLoopState.from_counters(
                restore_training_state(ckpt, policy, optimizer, run_dir)
            )
            if reference is not None:
                if not isinstance(ckpt.get("reference"), dict):
                    raise RunError(
                        f"{run_dir}: checkpoint has no reference policy", "start a new run"
                    )
                reference.policy.load_state_dict(ckpt["reference"])
            if state.kl_coef is not None:
                controller.value = state.kl_coef
            if reward_fn is not None:
                _record_reward_fn(run_dir, reward_fn, cb)
            more = (
                "its learning rate anneals over a fixed length; start a new run"
                if cfg.anneal_lr
                else f"to train further, pass --iterations {state.iteration + 1} or more"
            )
            if state.iteration >= cfg.iterations:
                raise RunError(
                    f"{run_dir}: the run already finished all {state.iteration} iterations", more
                )
            if (
                state.stopped_early
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
            truncate_metrics(run_dir, state.iteration)
        else:
            write_yaml(run_dir / DATASET, dataset.to_dict())
            atomic_write_text(run_dir / VOCAB, json.dumps(task.vocab.itos, ensure_ascii=False))
            (run_dir / METRICS).unlink(missing_ok=True)
            if reward_fn is not None:
                _record_reward_fn(run_dir, reward_fn, cb)
        atomic_write_text(run_dir / CONFIG, config_to_yaml(cfg))
        extra = {
            "vocab": list(task.vocab.itos),
            "dataset_fingerprint": dataset.fingerprint(),
            "env": cfg.env,
        }
        if reference is not None:
            extra["reference"] = reference.state_dict()
        if init is not None:
            extra["init_from"] = init.record()
        state.kl_coef = controller.value if reference is not None else None
        session.track(lambda: training_state(policy, optimizer, asdict(state), extra))
        session.start(state.iteration)
        cb.on_start(cfg, run_dir, cfg.iterations)

        venv = TextQAVecEnv(task)
        num_episodes = episodes_per_iteration(cfg, task.num_questions)
        curriculum = None
        if cfg.curriculum:
            curriculum = Curriculum.from_dataset(dataset, cfg.curriculum_threshold)
            curriculum.stage = state.curriculum_stage
        start = time.perf_counter() - state.wall_seconds
        for iteration in range(state.iteration + 1, cfg.iterations + 1):
            session.begin()
            if cfg.anneal_lr:
                frac = 1.0 - (iteration - 1) / cfg.iterations
                optimizer.param_groups[0]["lr"] = frac * cfg.learning_rate
            if curriculum is not None:  # only the active levels' questions
                q_idx = curriculum.sample(num_episodes)
            else:
                q_idx = balanced_questions(task.num_questions, num_episodes)
            try:
                ro = collect_text_episodes(policy, venv, q_idx)
            except TrainingError as exc:  # a --reward-fn that failed
                raise TrainingError(f"iteration {iteration}: {exc.message}", exc.hint) from exc
            kl_stats = None
            if reference is not None:  # rewards <- score - kl_coef * KL_t
                kl_stats = rlhf.apply_kl_penalty(ro, reference, controller, cfg.kl_estimator)
            batch, deltas = ro.to_batch(cfg.gamma, cfg.gae_lambda)
            # A trace is recorded when asked for; when the last iteration is asked for and
            # training may stop early, every iteration records (cheap, capped) and only the
            # final one is shown.
            traced = cb.wants_trace(iteration, cfg.iterations)
            may_be_last = cfg.target_accuracy is not None and cb.wants_trace(
                cfg.iterations, cfg.iterations
            )
            recorder = None
            if traced or may_be_last:
                from ppo_cli.trace import TraceRecorder

                recorder = TraceRecorder(settings.clip_coef, task.vocab.itos.__getitem__)
            try:
                stats = ppo_update(
                    policy, optimizer, batch, settings, recorder.on_minibatch if recorder else None
                )
            except TrainingError as exc:
                raise TrainingError(f"iteration {iteration}: {exc.message}", exc.hint) from exc
            check_finite_parameters(policy, iteration)

            record: dict[str, Any] = {
                "iteration": iteration,
                "episodes": state.episodes + ro.question_idx.shape[0],
                "steps": state.steps + ro.num_steps,
                "mean_reward": float(ro.episode_returns.mean()),
                "train_accuracy": float(ro.exact.float().mean()),
                "mean_length": float(ro.mask.sum(1).float().mean()),
                **{
                    k: stats[k]
                    for k in (
                        "loss",
                        "policy_loss",
                        "value_loss",
                        "entropy",
                        "approx_kl",
                        "clipfrac",
                        "epoch_losses",
                    )
                },
                "learning_rate": optimizer.param_groups[0]["lr"],
                "explained_variance": explained_variance(ro.values, batch.returns, ro.mask),
            }
            if kl_stats is not None:
                record.update(kl_stats.to_dict())
                # adapt for the next iteration (a fixed coefficient stays as it is)
                state.kl_coef = controller.update(kl_stats.kl, ro.question_idx.shape[0])
            evaluate_now = iteration % cfg.eval_every == 0 or iteration == cfg.iterations
            results: list[QAResult] = []
            if evaluate_now:
                results = evaluate_qa(policy, task)
                record["eval_accuracy"] = accuracy(results)
                if curriculum is not None:
                    record.update(curriculum.observe([r.correct for r in results]))
                    state.curriculum_stage = curriculum.stage
                cb.on_eval(iteration, results)
            record["wall_seconds"] = round(time.perf_counter() - start, 4)
            check_finite_metrics(record, ("loss", "mean_reward", "value_loss"), iteration)
            append_metrics(run_dir, record)

            state.iteration = iteration
            state.episodes, state.steps = record["episodes"], record["steps"]
            state.epochs += stats["epochs"]
            state.gradient_updates += stats["gradient_updates"]
            state.wall_seconds = record["wall_seconds"]
            if evaluate_now:
                state.accuracy = record["eval_accuracy"]
                state.results = [r.to_dict() for r in results]
            reached = (
                evaluate_now
                and cfg.target_accuracy is not None
                and state.accuracy is not None
                and state.accuracy >= cfg.target_accuracy
                and (curriculum is None or curriculum.complete)
            )
            state.stopped_early = bool(reached and iteration < cfg.iterations)
            session.end(iteration)
            cb.on_iteration(record)
            if recorder is not None and (traced or reached):
                from ppo_cli.trace import text_qa_trace

                questions = [p.question for p in dataset.pairs]
                cb.on_trace(
                    text_qa_trace(
                        iteration,
                        ro,
                        batch,
                        deltas,
                        recorder,
                        task.vocab.itos,
                        questions,
                        settings.norm_adv,
                    )
                )
            if reached:
                break
            session.stop_if_requested()

        wall = time.perf_counter() - start
        if not state.results:  # the last iteration always evaluates; this is for 0 iterations
            final = evaluate_qa(policy, task)
            state.accuracy, state.results = accuracy(final), [r.to_dict() for r in final]
        state.finished = True
        state.wall_seconds = wall
        session.save(state.iteration)
    return TrainResult(
        run_dir=run_dir,
        env=cfg.env,
        iterations=state.iteration,
        episodes=state.episodes,
        steps=state.steps,
        epochs=state.epochs,
        gradient_updates=state.gradient_updates,
        wall_seconds=wall,
        final_accuracy=state.accuracy,
        final_results=[QAResult(**r) for r in state.results],
        stopped_early=state.stopped_early,
    )
