"""One sweep worker: join (or create) the study, then claim configurations and train their seeds
until none is left. Several workers, here or on other machines, share one study this way.

Claiming is the storage's job (see storage.py): a grid is queued in the study once, by the
worker that created it, and each queued configuration is claimed by exactly one worker. A range
search asks Optuna's TPE for each new configuration; retries of interrupted ones are queued and
claimed the same way.

A trial = one configuration, trained for seeds 0..K-1 as ordinary run directories
<out>/<configuration>/s<k>; its value is the IQM of the seeds' scores (seed_score). They are
stored on the trial as they come, and in <run>/sweep_score.json, so an interrupted
configuration's finished seeds are not trained twice; its interrupted seed resumes.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ppo_cli.config import Config
from ppo_cli.errors import (
    ConfigError,
    PpoqaError,
    RunError,
    TrainingError,
    TrainingInterrupted,
)
from ppo_cli.kinds import kind_of
from ppo_cli.sweep.search import Axis, apply_params, grid_points, is_grid, params_slug
from ppo_cli.sweep.stats import iqm
from ppo_cli.sweep.storage import (
    OpenedStorage,
    StorageError,
    import_optuna,
    load_study,
    open_storage,
    worker_id,
)

SPEC_ATTR = "ppoqa_sweep"
READY_ATTR = "ppoqa_ready"
SCORE_FILE = "sweep_score.json"
DEFAULT_HEARTBEAT = 20
READY_WAIT_S = 120.0


@dataclass
class SweepSpec:
    """What a study searches; stored in the study so that every worker trains the same thing."""

    axes: list[Axis]
    seeds: int
    base: dict[str, Any]  # the resolved Config (its seed is replaced per run)
    trials: int | None = None  # range searches: how many configurations
    pruner: str = "none"
    objective: str = "final"  # a study from before objectives scored "final"

    @property
    def grid(self) -> bool:
        return is_grid(self.axes)

    @property
    def metric(self) -> str:
        return kind_of(self.base["env"]).objectives[self.objective]

    @property
    def direction(self) -> str:
        return "minimize" if self.objective == "iterations-to-solve" else "maximize"

    def config(self) -> Config:
        return Config(**self.base)

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, **asdict(self), "axes": [a.to_dict() for a in self.axes]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepSpec:
        return cls(
            axes=[Axis.from_dict(a) for a in d["axes"]],
            seeds=int(d["seeds"]),
            base=dict(d["base"]),
            trials=d.get("trials"),
            pruner=d.get("pruner", "none"),
            objective=d.get("objective", "final"),
        )

    def difference(self, other: SweepSpec) -> str | None:
        """The first way two specs differ, in words; None when they are the same."""
        mine, theirs = self.to_dict(), other.to_dict()
        if mine["axes"] != theirs["axes"]:
            return "--search " + " ".join(a.describe() for a in other.axes)
        for key in ("seeds", "trials", "pruner", "objective"):
            if mine[key] != theirs[key]:
                return f"--{key} {theirs[key]}"
        for key in sorted(set(mine["base"]) | set(theirs["base"])):
            if mine["base"].get(key) != theirs["base"].get(key):
                return f"{key}={theirs['base'].get(key)!r}"
        return None


class SweepEvents:
    """What a worker reports, as plain data; the CLI prints it."""

    def on_message(self, text: str) -> None: ...
    def on_trial_start(self, number: int, params: dict[str, Any]) -> None: ...
    def on_seed(
        self, number: int, seed: int, score: float, run_dir: Path, reused: bool
    ) -> None: ...
    def on_trial_end(self, number: int, state: str, value: float | None) -> None: ...


# --- study: create once, or join ------------------------------------------------------------


def _sampler_and_pruner(spec: SweepSpec, seed: int | None = None) -> tuple[Any, Any]:
    optuna = import_optuna()
    if spec.grid:
        # The grid is queued in the study; this sampler never has to choose (see module doc).
        sampler = optuna.samplers.RandomSampler()
    else:
        # constant_liar: a worker treats the others' running trials as if they had a bad value,
        # so parallel workers do not all sample the same region.
        startup = min(10, max(2, (spec.trials or 10) // 3))
        sampler = optuna.samplers.TPESampler(
            n_startup_trials=startup, constant_liar=True, seed=seed
        )
    if spec.pruner == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    else:
        pruner = optuna.pruners.NopPruner()
    return sampler, pruner


def create_or_join(
    opened: OpenedStorage, name: str, spec: SweepSpec | None
) -> tuple[Any, SweepSpec]:
    """The study named `name`: created (and its grid queued) by the first worker; later workers
    check that they were given the same search, or take the study's own when given none."""
    optuna = import_optuna()
    if spec is not None:
        # The worker that creates the study samples from a fixed seed, so a one-worker range
        # search proposes the same configurations again (runs are deterministic per seed);
        # workers that join draw their own, or they would all propose the creator's points.
        sampler, pruner = _sampler_and_pruner(spec, seed=0)
        try:
            study = optuna.create_study(
                study_name=name,
                storage=opened.storage,
                direction=spec.direction,
                sampler=sampler,
                pruner=pruner,
            )
        except optuna.exceptions.DuplicatedStudyError:
            pass
        else:
            study.set_user_attr(SPEC_ATTR, spec.to_dict())
            if spec.grid:
                for params in grid_points(spec.axes):
                    study.enqueue_trial(params, user_attrs={"ppoqa_params": params})
            study.set_user_attr(READY_ATTR, True)
            return study, spec
    study = load_study(opened, name)
    deadline = time.monotonic() + READY_WAIT_S
    while not study.user_attrs.get(READY_ATTR):
        if SPEC_ATTR not in study.user_attrs and time.monotonic() > deadline - READY_WAIT_S + 5:
            raise StorageError(
                f"--study {name!r}: this study was not made by `ppoqa sweep`",
                "choose another --study name",
            )
        if time.monotonic() > deadline:
            raise StorageError(
                f"--study {name!r}: the worker that created it never finished queueing its grid",
                "start a new study with another --study name",
            )
        time.sleep(0.5)
        study = load_study(opened, name)
    stored = SweepSpec.from_dict(study.user_attrs[SPEC_ATTR])
    if spec is not None:
        diff = spec.difference(stored)
        if diff is not None:
            raise ConfigError(
                f"--study {name!r} was created with other settings (it has {diff})",
                "give the same options as its first worker, or only --storage/--study to join "
                "with its own, or choose another --study",
            )
    sampler, pruner = _sampler_and_pruner(stored)
    return load_study(opened, name, sampler=sampler, pruner=pruner), stored


# --- claiming -------------------------------------------------------------------------------


def _claim_waiting(study: Any) -> int | None:
    """Move one WAITING trial to RUNNING and return its id; None when none is left. The storage
    makes the state change atomic, so a trial is claimed by one worker only."""
    optuna = import_optuna()
    waiting = optuna.trial.TrialState.WAITING
    for frozen in study.get_trials(deepcopy=False, states=(waiting,)):
        try:
            if study._storage.set_trial_state_values(
                frozen._trial_id, optuna.trial.TrialState.RUNNING
            ):
                return frozen._trial_id
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def _search_done(study: Any, trials: int) -> bool:
    """A range search has no retry waiting and has spent or is spending its configurations
    (failed attempts not counted)."""
    s = import_optuna().trial.TrialState
    if study.get_trials(deepcopy=False, states=(s.WAITING,)):
        return False
    return len(study.get_trials(deepcopy=False, states=(s.COMPLETE, s.PRUNED, s.RUNNING))) >= trials


def requeue(study: Any, frozen: Any) -> None:
    """Queue a failed or stale trial's configuration again (its finished seeds are kept)."""
    params = frozen.user_attrs.get("ppoqa_params")
    if not params:  # a range-search trial that died before it chose its values: nothing to redo
        return
    root = frozen.user_attrs.get("ppoqa_retry_of", frozen.number)
    study.enqueue_trial(params, user_attrs={"ppoqa_params": params, "ppoqa_retry_of": root})


@contextlib.contextmanager
def _heartbeat(opened: OpenedStorage, trial_id: int, interval: int) -> Iterator[None]:
    """A thread that says "still running" for one trial: Optuna's heartbeat (RDB storages), and
    a timestamp on the trial that `--report` reads on every storage."""

    def beat() -> None:
        if opened.heartbeat:
            opened.storage.record_heartbeat(trial_id)
        opened.storage.set_trial_user_attr(trial_id, "ppoqa_heartbeat", time.time())

    def run() -> None:
        while not stop.wait(interval):
            with contextlib.suppress(Exception):  # a missed beat is retried at the next interval
                beat()

    stop = threading.Event()
    beat()
    thread = threading.Thread(target=run, daemon=True, name="ppoqa-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


@contextlib.contextmanager
def _no_sigint() -> Iterator[None]:
    """Let the bookkeeping after a Ctrl-C finish even if Ctrl-C is pressed again."""
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


# --- training one configuration ---------------------------------------------------------------


def _quiet_callbacks(events: SweepEvents) -> Any:
    """The trainer's callbacks for a sweep: no progress bars, warnings passed on. (Made here:
    the trainer imports torch, which a sweep's coordinator never needs.)"""
    from ppo_cli.core.trainer import Callbacks

    class QuietCallbacks(Callbacks):
        def on_warning(self, message: str) -> None:
            events.on_message(f"warning: {message}")

    return QuietCallbacks()


def seed_score(result: Any, cfg: Config, objective: str = "final") -> float:
    """The score of one finished run under the objective (`--objective`):

    final                the final greedy accuracy (text QA) or mean evaluation return (gym)
    auc                  the mean of the learning curve over the run's whole budget: text QA's
                         greedy accuracy per iteration up to --iterations, an early-stopped
                         run counted at its last accuracy to the end (so solving sooner scores
                         higher); gymnasium's episode returns over training
    iterations-to-solve  text QA: the iteration that reached --target-accuracy, or the
                         budget + 1 when none did (lower is better)
    """
    kind = kind_of(cfg.env)
    value = getattr(result, kind.final)
    if value is None:
        raise TrainingError(f"{result.run_dir}: the run ended without a final evaluation", "")
    if objective == "final":
        return float(value)
    from ppo_cli.core.rundir import read_config, read_metrics

    records = read_metrics(result.run_dir)
    if kind.noisy:  # episode returns: their mean over training
        returns = [float(r[kind.curve]) for r in records if kind.curve in r]
        return float(sum(returns) / len(returns)) if returns else float(value)
    budget = int(read_config(result.run_dir).get("iterations") or len(records))
    curve: dict[int, float] = {
        int(r["iteration"]): float(r["eval_accuracy"]) for r in records if "eval_accuracy" in r
    }
    if objective == "iterations-to-solve":
        target = cfg.target_accuracy if cfg.target_accuracy is not None else 1.0
        solved = [it for it, acc in sorted(curve.items()) if acc >= target - 1e-9]
        return float(solved[0] if solved else budget + 1)
    total, last = 0.0, 0.0
    for it in range(1, budget + 1):  # evaluated every --eval-every: carry the last value
        last = curve.get(it, last)
        total += last
    return total / max(1, budget)


def read_score(run_dir: Path) -> float | None:
    try:  # missing (OSError), half-written or not ours: no score
        return float(json.loads((run_dir / SCORE_FILE).read_text(encoding="utf-8"))["score"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def train_seed(
    cfg: Config, run_dir: Path, metric: str, events: SweepEvents, objective: str = "final"
) -> tuple[float, Path, bool]:
    """Train (or resume, or reuse) one seed's run; returns (score, run dir, reused)."""
    from ppo_cli.core.rundir import atomic_write_text, holds_run
    from ppo_cli.core.session import resume_config
    from ppo_cli.core.trainer import train
    from ppo_cli.textqa.task import is_run_of

    candidates = [run_dir] + [run_dir.with_name(f"{run_dir.name}-{k}") for k in range(2, 10)]
    for path in candidates:
        score = read_score(path)
        if score is not None:
            return score, path, True
        resume = holds_run(path)
        run_cfg = cfg
        if resume:  # an interrupted seed: continue it with the config it recorded
            try:
                run_cfg = resume_config(path, {})
            except PpoqaError:
                continue
            if not is_run_of(cfg, run_cfg):
                continue  # a run with other settings in our folder: leave it alone
        try:
            result = train(run_cfg, path, _quiet_callbacks(events), resume=resume)
        except RunError as exc:
            if resume and "already" in exc.message:  # finished, but killed before its score file
                continue
            raise
        score = seed_score(result, cfg, objective)
        atomic_write_text(path / SCORE_FILE, json.dumps({"score": score, "metric": metric}) + "\n")
        return score, path, False
    raise RunError(f"{run_dir}: no usable run directory for this seed", "remove the extra copies")


def _run_trial(
    study: Any,
    trial: Any,
    spec: SweepSpec,
    opened: OpenedStorage,
    opts: WorkerOptions,
    events: SweepEvents,
) -> None:
    optuna = import_optuna()
    storage = opened.storage
    params: dict[str, Any] = {}
    for axis in spec.axes:
        if axis.kind == "list":
            params[axis.name] = trial.suggest_categorical(axis.name, list(axis.values))
        elif axis.kind == "int":
            params[axis.name] = trial.suggest_int(axis.name, int(axis.low), int(axis.high))
        else:
            params[axis.name] = trial.suggest_float(
                axis.name, axis.low, axis.high, log=axis.kind == "log"
            )
    storage.set_trial_user_attr(trial._trial_id, "ppoqa_params", params)
    storage.set_trial_user_attr(trial._trial_id, "ppoqa_worker", worker_id())
    storage.set_trial_user_attr(trial._trial_id, "ppoqa_heartbeat_interval", opts.heartbeat)
    events.on_trial_start(trial.number, params)
    base = spec.config()
    from ppo_cli.core.rundir import claim_dir

    claim_dir(opts.out, "sweep folder", "--out", early=("study.db",))  # marks it as ours
    folder = opts.out / params_slug(params)
    scores: list[float] = []
    runs: list[str] = []
    try:
        with _heartbeat(opened, trial._trial_id, opts.heartbeat):
            for seed in range(spec.seeds):
                cfg = apply_params(base, params, seed)
                score, run_dir, reused = train_seed(
                    cfg, folder / f"s{seed}", spec.metric, events, spec.objective
                )
                scores.append(score)
                runs.append(str(run_dir.resolve()))
                storage.set_trial_user_attr(trial._trial_id, "ppoqa_scores", scores)
                storage.set_trial_user_attr(trial._trial_id, "ppoqa_runs", runs)
                events.on_seed(trial.number, seed, score, run_dir, reused)
                if spec.pruner == "median" and seed < spec.seeds - 1:
                    trial.report(iqm(scores), step=seed)
                    if trial.should_prune():
                        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                        events.on_trial_end(trial.number, "pruned", None)
                        return
    except (TrainingInterrupted, KeyboardInterrupt):
        with _no_sigint():
            storage.set_trial_user_attr(trial._trial_id, "ppoqa_error", "interrupted (Ctrl-C)")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            requeue(study, study._storage.get_trial(trial._trial_id))
        events.on_trial_end(trial.number, "interrupted", None)
        raise
    except TrainingError as exc:  # NaN/Inf: an outcome of these settings, not worth a retry
        storage.set_trial_user_attr(trial._trial_id, "ppoqa_error", exc.message)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        events.on_trial_end(trial.number, "failed", None)
        events.on_message(f"trial {trial.number} failed: {exc.message}")
        return
    except BaseException as exc:  # our bug or the user's settings: keep the work for a retry
        with _no_sigint(), contextlib.suppress(Exception):
            storage.set_trial_user_attr(trial._trial_id, "ppoqa_error", str(exc)[:300])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            requeue(study, study._storage.get_trial(trial._trial_id))
        raise
    value = iqm(scores)
    study.tell(trial, value)
    events.on_trial_end(trial.number, "complete", value)


@dataclass
class WorkerOptions:
    storage_url: str
    study: str
    out: Path
    spec: SweepSpec | None  # None: join the study with its own spec
    heartbeat: int = DEFAULT_HEARTBEAT


def run_worker(opts: WorkerOptions, events: SweepEvents) -> bool:
    """Claim and train configurations until none is left; True when Ctrl-C stopped it."""
    optuna = import_optuna()
    opened = open_storage(opts.storage_url, heartbeat=opts.heartbeat, on_stale=requeue)
    study, spec = create_or_join(opened, opts.study, opts.spec)
    try:
        while True:
            if opened.heartbeat:  # RDB: a trial whose worker was killed is failed, requeued
                optuna.storages.fail_stale_trials(study)
            if spec.grid:
                trial_id = _claim_waiting(study)
                if trial_id is None:
                    return False
                trial = optuna.trial.Trial(study, trial_id)
            elif _search_done(study, spec.trials or 0):
                return False
            else:
                trial = study.ask()
            _run_trial(study, trial, spec, opened, opts, events)
    except (TrainingInterrupted, KeyboardInterrupt):
        return True


def check_spec(spec: SweepSpec) -> None:
    """Refuse settings that would make every trial fail, before a study is created."""
    base = spec.config()
    points = grid_points(spec.axes) if spec.grid else [{}]
    for params in points:
        apply_params(base, params, 0)
    if base.is_text_qa:
        from ppo_cli.textqa.data import load_dataset

        load_dataset(base.dataset)  # a missing or broken dataset: one error now, not per trial
