"""`--search NAME=V1,V2,...` (a grid axis) and `NAME=log(LO,HI)` / `int(LO,HI)` / `float(LO,HI)`
(a range for TPE): parsed and checked against the Config before any study is touched."""

from __future__ import annotations

import difflib
import re
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from ppo_cli.config import FIELD_TYPES, Config, has_reference, resolve
from ppo_cli.errors import ConfigError, UsageError, short_repr
from ppo_cli.presets import estimator_defaults

_RANGE = re.compile(r"^(log|int|float)\((.*)\)$", re.IGNORECASE)
# Settings a sweep decides itself (seed) or that say where, not what (device, threads, ...).
NOT_SEARCHABLE = ("seed", "save_every", "tensorboard", "device", "threads")


@dataclass(frozen=True)
class Axis:
    """One searched setting: a list of values (kind "list") or a range (log / int / float)."""

    name: str
    kind: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "list":
            return {"name": self.name, "kind": "list", "values": list(self.values)}
        return {"name": self.name, "kind": self.kind, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Axis:
        if d["kind"] == "list":
            return cls(d["name"], "list", tuple(d["values"]))
        return cls(d["name"], d["kind"], low=d["low"], high=d["high"])

    def describe(self) -> str:
        if self.kind == "list":
            return f"{self.name}={','.join(str(v) for v in self.values)}"
        return f"{self.name}={self.kind}({self.low:g},{self.high:g})"


def is_grid(axes: list[Axis]) -> bool:
    """All axes are lists: a grid (every combination, once). Any range makes it a TPE search."""
    return all(a.kind == "list" for a in axes)


def grid_points(axes: list[Axis]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, first axis slowest."""
    import itertools

    names = [a.name for a in axes]
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(a.values for a in axes))
    ]


def _setting_name(raw: str, text: str) -> str:
    name = raw.strip().replace("-", "_")
    if name in FIELD_TYPES and name not in NOT_SEARCHABLE:
        return name
    if name in NOT_SEARCHABLE:
        why = "--seeds K sets the seeds" if name == "seed" else "it does not change what is learned"
        raise UsageError(
            f"--search {text!r}: {name} cannot be searched ({why})",
            "search a PPO setting such as clip_coef",
        )
    close = difflib.get_close_matches(name, sorted(set(FIELD_TYPES) - set(NOT_SEARCHABLE)), n=3)
    hint = (
        f"did you mean {', '.join(close)}?"
        if close
        else "names are those of `ppoqa train --help`, with _ (clip_coef)"
    )
    raise UsageError(f"--search {text!r}: {name!r} is not a setting", hint)


def _check_value(base: Config, name: str, value: Any, text: str) -> Any:
    """The value as the Config stores it, or a usage error naming --search."""
    try:
        cfg = apply_params(base, {name: value}, base.seed, "option")
    except ConfigError as exc:
        msg = exc.message.replace(f"--{name.replace('_', '-')}", f"--search {text!r}:", 1)
        raise UsageError(msg, exc.hint) from None
    return getattr(cfg, name)


def parse_axis(text: str, base: Config) -> Axis:
    """One --search value; base is the sweep's resolved config (its types and ranges)."""
    if "=" not in text:
        raise UsageError(
            f"--search {text!r}: expected NAME=V1,V2,... or NAME=log(LO,HI), int(LO,HI), "
            "float(LO,HI)",
            "e.g. --search clip_coef=0.1,0.2,0.3  or  --search learning_rate=log(1e-4,1e-2)",
        )
    raw_name, spec = text.split("=", 1)
    name = _setting_name(raw_name, text)
    spec = spec.strip()
    kind = FIELD_TYPES[name].replace(" | None", "")
    match = _RANGE.match(spec)
    if match:
        rkind = match.group(1).lower()
        if kind not in ("int", "float"):
            raise UsageError(
                f"--search {text!r}: {name} takes a list of values, not a range ({rkind}(...))",
                f"list them: --search {name}=A,B",
            )
        if rkind == "float" and kind == "int":
            raise UsageError(
                f"--search {text!r}: {name} takes whole numbers", f"use {name}=int(LO,HI)"
            )
        if rkind == "int" and kind == "float":
            raise UsageError(
                f"--search {text!r}: {name} takes real numbers",
                f"use {name}=float(LO,HI) or log(LO,HI)",
            )
        bounds = [b.strip() for b in match.group(2).split(",")]
        if len(bounds) != 2 or not all(bounds):
            raise UsageError(
                f"--search {text!r}: a range has two bounds", f"e.g. {name}={rkind}(LO,HI)"
            )
        lo, hi = (_number(b, text) for b in bounds)
        lo, hi = (_check_value(base, name, v, text) for v in (lo, hi))
        if not lo < hi:
            raise UsageError(
                f"--search {text!r}: the low bound must be below the high one",
                f"e.g. {name}={rkind}({short_repr(min(lo, hi))},{short_repr(max(lo, hi))})",
            )
        if rkind == "log" and lo <= 0:
            raise UsageError(
                f"--search {text!r}: log(LO,HI) needs LO > 0", "use float(LO,HI) for a range from 0"
            )
        return Axis(name, rkind, low=lo, high=hi)
    if "(" in spec or ")" in spec:
        raise UsageError(
            f"--search {text!r}: unknown range {spec.split('(')[0]!r}",
            "ranges are log(LO,HI), int(LO,HI) and float(LO,HI)",
        )
    items = [v.strip() for v in spec.split(",")]
    if not spec or not all(items):
        raise UsageError(f"--search {text!r}: empty value in the list", f"e.g. --search {name}=A,B")
    values: list[Any] = []
    for item in items:
        value = _check_value(base, name, _scalar(item), text)
        if value in values:
            raise UsageError(f"--search {text!r}: {item} is listed twice", "list each value once")
        values.append(value)
    return Axis(name, "list", tuple(values))


def _scalar(item: str) -> Any:
    """'3' -> 3, '1e-4' -> 0.0001, 'true' -> True, 'lstm' -> 'lstm'."""
    for cast in (int, float):
        with suppress(ValueError):
            return cast(item)
    lowered = item.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return item


def _number(item: str, text: str) -> float:
    value = _scalar(item)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"--search {text!r}: {item!r} is not a number", "e.g. log(1e-4,1e-2)")
    return value


def parse_search(texts: list[str], base: Config) -> list[Axis]:
    """All --search values; each setting at most once."""
    axes: list[Axis] = []
    for text in texts:
        axis = parse_axis(text, base)
        if any(a.name == axis.name for a in axes):
            raise UsageError(
                f"--search {axis.name} is given twice", "give each setting one --search"
            )
        axes.append(axis)
    return axes


def apply_params(base: Config, params: dict[str, Any], seed: int, source: str = "config") -> Config:
    """The config one seed of one configuration trains with, built by resolve(): the sweep's
    resolved config < the estimator a trial names (its documented settings, as `ppoqa train
    --advantage NAME` gives them) < the trial's params."""
    layers = base.to_dict()
    if base.is_text_qa and isinstance(params.get("advantage"), str):
        own = estimator_defaults(params["advantage"])
        place = own.pop("kl_in", None)
        if has_reference(base):
            own["kl_in"] = place
        layers |= own
    return resolve({"seed": seed}, base=layers | params, source=source)


def params_label(params: dict[str, Any]) -> str:
    """clip_coef=0.1 ent_coef=0: how tables and legends name a configuration."""
    return " ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def params_slug(params: dict[str, Any]) -> str:
    """A folder name for a configuration: readable, and unique through a short hash of the exact
    values (two TPE samples can agree to four digits)."""
    import hashlib
    import json

    exact = json.dumps(params, sort_keys=True)
    digest = hashlib.sha256(exact.encode()).hexdigest()[:6]
    text = ",".join(f"{k}={_fmt(v)}" for k, v in params.items())
    text = re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)[:120]
    return f"{text}-{digest}" if text else digest
