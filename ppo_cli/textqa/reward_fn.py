"""`--reward-fn FILE.py:NAME` or `module:NAME`: a plain Python function (HINT_SHAPE) replaces
the environment's score of a finished answer; the step penalty and the KL penalty stay as
configured. RLHF with a function you can read, what TRL's users asked for instead of a reward
model (huggingface/trl #2363). Whatever a user gets wrong (file, module, function, signature;
during training an exception, a non-number or NaN) becomes one PpoqaError line naming it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppo_cli.errors import ConfigError, TrainingError, short_repr
from ppo_cli.files import not_regular
from ppo_cli.usercode import user_code

FLOAT32_MAX = 3.4028234663852886e38  # rewards are float32 tensors
RECORD = "reward_fn.json"  # in the run directory: which function, from which file, its sha256
_FIX_FILE = "fix the file so that `python FILE.py` runs"
_FIX_MODULE = "fix the module so that it imports"
HINT_SHAPE = "a reward function is  def NAME(question: str, answer: str, target: str) -> float"


@dataclass
class RewardFunction:
    """A loaded user reward function and where it came from."""

    spec: str  # as given: "path/to/file.py:NAME" or "package.module:NAME"
    name: str
    path: str | None  # the source file (absolute), when there is one
    sha256: str | None  # of that file, recorded in the run directory
    fn: Callable[[str, str, str], Any]

    def record(self) -> dict[str, Any]:
        return {"spec": self.spec, "name": self.name, "path": self.path, "sha256": self.sha256}

    def __call__(self, question: str, answer: str, target: str) -> float:
        """One checked score; any failure stops training with one line (TrainingError)."""
        where = f"reward function {self.name} on question {short_repr(question)}"
        hint = f"fix {self.spec} and resume the run"
        try:
            with user_code(f"reward function {self.name}", TrainingError, hint):
                value = self.fn(question, answer, target)
        except TrainingError:
            raise
        except Exception as exc:  # the user's code: any exception is reported, not a crash
            raise TrainingError(
                f"{where} (answer {short_repr(answer)}) raised {type(exc).__name__}: "
                f"{short_repr(str(exc), 80)}",
                hint,
            ) from exc
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TrainingError(
                f"{where} returned {short_repr(value)} ({type(value).__name__}), not a number",
                f"return an int or float from {self.spec}, then resume the run",
            )
        try:
            value = float(value)
        except OverflowError:  # an int beyond any float (10**400)
            value = math.inf
        if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
            raise TrainingError(
                f"{where} (answer {short_repr(answer)}) returned {value}",
                f"return a finite number (|x| < 3.4e38, rewards are float32) from {self.spec}, "
                "then resume the run",
            )
        return value


def _split(spec: str) -> tuple[str, str]:
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise ConfigError(
            f"--reward-fn {short_repr(spec)}: expected FILE.py:NAME or module:NAME",
            "e.g. --reward-fn examples/proxy_paris.py:is_paris",
        )
    if not name.isidentifier():
        raise ConfigError(
            f"--reward-fn {short_repr(spec)}: {short_repr(name)} is not a Python function name",
            "e.g. --reward-fn examples/proxy_paris.py:is_paris",
        )
    return target, name


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _import(spec: str, shown: str, fix: str, load: Callable[[], Any]) -> Any:
    """load() under user_code; any exception it raises becomes one ConfigError line."""
    try:
        with user_code(f"--reward-fn {spec}: importing {shown}", ConfigError, fix):
            return load()
    except ConfigError:
        raise
    except Exception as exc:
        if isinstance(exc, ModuleNotFoundError) and fix == _FIX_MODULE:
            raise ConfigError(
                f"--reward-fn {spec}: no module named {short_repr(exc.name or shown)}",
                "pass FILE.py:NAME for a file, or a module importable from this Python",
            ) from exc
        raise ConfigError(
            f"--reward-fn {spec}: importing {shown} raised {type(exc).__name__}: "
            f"{short_repr(str(exc), 80)}",
            fix,
        ) from exc


def _load_file(path: Path, spec: str, shown: str) -> Any:
    if not path.is_file():
        kind = not_regular(path)
        raise ConfigError(
            f"--reward-fn {spec}: {shown} " + (f"is {kind}, not a file" if kind else "not found"),
            "pass an existing .py file, e.g. --reward-fn examples/proxy_paris.py:is_paris",
        )
    mod_name = f"ppoqa_reward_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    loader_spec = importlib.util.spec_from_file_location(mod_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigError(f"--reward-fn {spec}: {shown} cannot be imported", "pass a .py file")
    module, loader = importlib.util.module_from_spec(loader_spec), loader_spec.loader
    _import(spec, shown, _FIX_FILE, lambda: loader.exec_module(module))
    return module


def _check_signature(fn: Any, spec: str) -> None:
    if not callable(fn):
        raise ConfigError(
            f"--reward-fn {spec}: is a {type(fn).__name__}, not a function", HINT_SHAPE
        )
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin without a signature: let the first call tell
    try:
        sig.bind("question", "answer", "target")
    except TypeError as exc:
        raise ConfigError(
            f"--reward-fn {spec}: signature {fn.__name__}{sig} cannot take "
            f"(question, answer, target) ({exc})",
            HINT_SHAPE,
        ) from None


def load_reward_fn(spec: str) -> RewardFunction:
    """Import and check a reward function: FILE.py:NAME (relative to the cwd) or module:NAME."""
    target, name = _split(spec)
    if _is_file(target):
        path: Path | None = Path(target).resolve()
        module = _load_file(path, spec, target)
    else:
        module = _import(spec, target, _FIX_MODULE, lambda: importlib.import_module(target))
        source = getattr(module, "__file__", None)
        path = Path(source).resolve() if source else None
    if not hasattr(module, name):
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        hint = f"functions there: {', '.join(public[:6])}" if public else HINT_SHAPE
        raise ConfigError(f"--reward-fn {spec}: {target} has no function {name!r}", hint)
    fn = getattr(module, name)
    _check_signature(fn, spec)
    sha = hashlib.sha256(path.read_bytes()).hexdigest() if path and path.is_file() else None
    return RewardFunction(spec, name, str(path) if path else None, sha, fn)


def absolute_spec(spec: str) -> str:
    """FILE.py:NAME with FILE made absolute (a resumed run may start from another folder)."""
    target, name = _split(spec)
    if _is_file(target):
        return f"{Path(target).resolve()}:{name}"
    return spec


def record_reward_fn(run_dir: Path, reward_fn: Any, warn: Callable[[str], None]) -> None:
    """reward_fn.json: which function scored the run, from which file (sha256); a resume with
    a changed file warns and records both hashes."""
    from ppo_cli.core.rundir import atomic_write_text

    path = run_dir / RECORD
    doc = reward_fn.record()
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        was = old.get("sha256") if isinstance(old, dict) else None
        if was and reward_fn.sha256 and was != reward_fn.sha256:
            warn(
                f"reward function file {reward_fn.path} changed since the run recorded it "
                f"(sha256 {str(was)[:12]} -> {reward_fn.sha256[:12]}); the resumed iterations "
                "use the new code"
            )
            doc["previous_sha256"] = [*old.get("previous_sha256", []), was]
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
