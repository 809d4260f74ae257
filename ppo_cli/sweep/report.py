"""`ppoqa sweep --report`: one row per configuration of a study, best first, with its per-seed
scores, IQM, 95 % bootstrap CI and state. Reading only: the report never changes the study."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ppo_cli.sweep.stats import bootstrap_ci, iqm
from ppo_cli.sweep.storage import StorageError, display_url, import_optuna, load_study, open_storage
from ppo_cli.sweep.worker import DEFAULT_HEARTBEAT, SPEC_ATTR, SweepSpec

STALE_AFTER = 3  # heartbeat intervals without a beat: the worker is gone
# When one configuration has several trials (retries), the row shows the most telling one.
_PRIORITY = {"complete": 0, "running": 1, "waiting": 2, "stale": 3, "pruned": 4, "failed": 5}


@dataclass
class Configuration:
    params: dict[str, Any]
    scores: list[float]
    iqm: float | None
    ci: tuple[float, float] | None
    state: str
    trials: list[int] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ci": list(self.ci) if self.ci is not None else None}


@dataclass
class Report:
    study: str
    storage: str
    metric: str
    objective: str
    lower_is_better: bool
    seeds: int
    configurations: list[Configuration]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "configurations": [c.to_dict() for c in self.configurations]}


def trial_state(frozen: Any, now: float) -> str:
    """complete / pruned / failed / waiting / running, or stale: running with no heartbeat for
    STALE_AFTER intervals (its worker was killed; an RDB storage's next worker re-queues it)."""
    s = import_optuna().trial.TrialState
    if frozen.state == s.RUNNING:
        beat = frozen.user_attrs.get("ppoqa_heartbeat")
        interval = frozen.user_attrs.get("ppoqa_heartbeat_interval", DEFAULT_HEARTBEAT)
        if beat is None:
            beat = frozen.datetime_start.timestamp() if frozen.datetime_start else now
        return "stale" if now - float(beat) > STALE_AFTER * float(interval) else "running"
    return {
        s.COMPLETE: "complete",
        s.PRUNED: "pruned",
        s.FAIL: "failed",
        s.WAITING: "waiting",
    }[frozen.state]


def configurations(
    trials: list[Any], now: float | None = None, lower_is_better: bool = False
) -> list[Configuration]:
    """Group a study's trials by configuration; the best IQM first, unscored ones last
    (lowest first for a score such as iterations-to-solve)."""
    now = time.time() if now is None else now
    groups: dict[str, tuple[dict[str, Any], list[Any]]] = {}
    for t in trials:
        params = t.user_attrs.get("ppoqa_params") or t.params
        if not params:
            continue  # a range-search trial that died before choosing its values
        groups.setdefault(json.dumps(params, sort_keys=True), (params, []))[1].append(t)
    rows = []
    for params, group in groups.values():
        states = [(trial_state(t, now), t) for t in group]
        # The most telling attempt; among equals the latest.
        states.sort(key=lambda st: (_PRIORITY[st[0]], -st[1].number))
        state, best = states[0]
        scores = [float(x) for x in best.user_attrs.get("ppoqa_scores", [])]
        rows.append(
            Configuration(
                params=params,
                scores=scores,
                iqm=iqm(scores) if scores else None,
                ci=bootstrap_ci(scores) if scores else None,
                state=state,
                trials=sorted(t.number for t in group),
                runs=list(best.user_attrs.get("ppoqa_runs", [])),
                error=best.user_attrs.get("ppoqa_error") if state == "failed" else None,
            )
        )
    # Best IQM first; among equal IQMs the one whose interval reaches less far the wrong way.
    sign = 1.0 if lower_is_better else -1.0
    rows.sort(
        key=lambda r: (
            r.iqm is None,
            sign * (r.iqm or 0.0),
            sign * ((r.ci[1] if lower_is_better else r.ci[0]) if r.ci else 0.0),
            _PRIORITY[r.state],
        )
    )
    return rows


def study_report(storage_url: str, study_name: str) -> Report:
    """Open the storage without creating anything and summarize the study."""
    opened = open_storage(storage_url, create=False)
    study = load_study(opened, study_name)
    raw = study.user_attrs.get(SPEC_ATTR)
    if raw is None:
        raise StorageError(
            f"--study {study_name!r}: not a study made by `ppoqa sweep`",
            "optuna-dashboard or `optuna trials` show other studies",
        )
    spec = SweepSpec.from_dict(raw)
    lower = spec.direction == "minimize"
    return Report(
        study=study_name,
        storage=display_url(storage_url),
        metric=spec.metric,
        seeds=spec.seeds,
        configurations=configurations(study.get_trials(deepcopy=False), lower_is_better=lower),
        objective=spec.objective,
        lower_is_better=lower,
    )
