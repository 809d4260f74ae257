"""Vectorized gymnasium environments for the PPO core: which spaces, user modules, kwargs.

Observations reach the policy as one flat float vector: Box as is, Discrete one-hot, and
Tuple/Dict of those through gymnasium's FlattenObservation. Actions: Discrete and MultiDiscrete
(one categorical per component) or a Box (a Gaussian; clipped to the bounds at the env).

Every vector mode runs with NEXT_STEP autoreset (the only one the numpy-vectorized CartPole
supports): the step that ends an episode returns its final observation, and the next step of
that sub-env only resets it. Collectors leave that reset step out of training, and the value
of the final observation (to bootstrap a truncation) comes from the next step's forward pass."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import os
import re
import sys
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import yaml
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, VectorEnv

from ppo_cli.errors import EnvError, UsageError, first_line
from ppo_cli.gym.vector_envs import OWN_VECTOR_ENVS
from ppo_cli.usercode import user_code

SUPPORTED = (
    "ppoqa supports Box, Discrete, MultiBinary and Tuple/Dict-of-those observation spaces "
    "and Discrete, MultiDiscrete and Box action spaces"
)
_GYM_MODE = {"sync": "sync", "async": "async", "vector": "vector_entry_point"}


@dataclass(frozen=True)
class EnvInfo:
    """What the policy and the checkpoint need to know about an environment."""

    env_id: str
    obs_dim: int  # size of the flat observation the policy reads
    num_actions: int  # Discrete: n; MultiDiscrete: number of components; Box: action dims
    action_start: int  # Discrete(n, start): env action = policy action + start
    vector_mode: str  # the mode really used: sync | async | vector
    action_kind: str = "discrete"  # discrete | multi_discrete | box
    action_nvec: tuple[int, ...] = ()  # MultiDiscrete: choices per component
    action_starts: tuple[int, ...] = ()  # MultiDiscrete: start per component
    action_low: tuple[float, ...] = ()  # Box: bounds the sampled action is clipped to
    action_high: tuple[float, ...] = ()
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    added_time_limit: int | None = None  # ppoqa's cap on an env registered without one

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """The policy's action [N, ...] as the env takes it: offset by start, or clipped to
        the Box bounds (PPO keeps training on the unclipped sample)."""
        if self.action_kind == "box":
            return np.clip(action, np.array(self.action_low), np.array(self.action_high))
        if self.action_kind == "multi_discrete":
            return action + np.array(self.action_starts, dtype=np.int64)
        return action + self.action_start


_FIX_ENV = "the error is in the environment's code; PPOQA_DEBUG=1 shows its traceback"


def is_user_env(spec: gym.envs.registration.EnvSpec) -> bool:
    """An env whose code is not gymnasium's own (a user's module, a third-party package): its
    calls run under ppo_cli.usercode's rules."""
    entry = spec.entry_point if spec.vector_entry_point is None else spec.vector_entry_point
    return not (isinstance(entry, str) and entry.startswith("gymnasium."))


def import_env_module(env_id: str) -> str:
    """`module:EnvId` as gymnasium.make takes it: import the module (which registers the env)
    and return EnvId; a plain id is returned unchanged."""
    if ":" not in env_id:
        return env_id
    module, _, name = env_id.partition(":")
    if not module or not name:
        raise EnvError(f"--env {env_id!r}: expected module:EnvId", "e.g. --env mypkg.envs:MyEnv-v0")
    # Like `python -m` and uvicorn's module:app: a module in the current folder imports even
    # though the `ppoqa` script's own folder is first on sys.path.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    fix = f"check that the module imports on its own: python -c 'import {module}'"
    try:
        with user_code(f"--env {env_id}: importing {module}", EnvError, fix):
            importlib.import_module(module)
    except EnvError:
        raise
    except Exception as exc:  # the user's module: any error it raises is its own
        raise EnvError(
            f"--env {env_id}: importing {module} failed ({type(exc).__name__}: {first_line(exc)})",
            fix,
        ) from exc
    if name not in gym.registry:
        close = _close_ids(name, _ids_of_module(module), cutoff=0.7)
        raise EnvError(
            f"--env {env_id}: {module} was imported but did not register '{name}'",
            f"did you mean {', '.join(f'{module}:{c}' for c in close)}?"
            if close
            else f"call gymnasium.register(id='{name}', entry_point=...) in {module}",
        )
    return name


def _ids_of_module(module: str) -> list[str]:
    """The ids whose entry point lives in `module` (what importing it registered)."""

    def home(entry: Any) -> str:
        return (
            entry.partition(":")[0] if isinstance(entry, str) else getattr(entry, "__module__", "")
        )

    return sorted(i for i, spec in gym.registry.items() if home(spec.entry_point) == module)


def _close_ids(env_id: str, ids: list[str], cutoff: float = 0.5) -> list[str]:
    """Registered ids close to env_id, comparing case-insensitively too ("good-v0" -> Good-v0)."""
    lower = {i.lower(): i for i in ids}
    if env_id.lower() in lower:
        return [lower[env_id.lower()]]
    close = difflib.get_close_matches(env_id, ids, n=3, cutoff=cutoff)
    caseless = difflib.get_close_matches(env_id.lower(), list(lower), n=3, cutoff=cutoff)
    return close or [lower[c] for c in caseless]  # "cartpole" -> CartPole-v1


def parse_env_kwargs(items: list[str]) -> dict[str, Any]:
    """`--env-kwargs KEY=VALUE` (repeatable) -> {KEY: VALUE}; VALUE is one YAML scalar read
    with safe_load (8x8 stays text, 0.5 a number, true a bool), never evaluated as code."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(
                f"--env-kwargs {item!r}: expected KEY=VALUE with KEY a Python name",
                "e.g. --env-kwargs map_name=8x8 --env-kwargs is_slippery=false",
            )
        try:
            # On a command line '#' is text, never a YAML comment: `mode=# note` is "# note",
            # not null (unless the value is quoted, where YAML keeps it anyway).
            is_text = raw.strip() and raw.lstrip()[0] not in "'\"" and re.search(r"(^|\s)#", raw)
            value = raw.strip() if is_text else yaml.safe_load(raw) if raw.strip() else ""
            bad = not isinstance(value, (str, int, float, bool)) and value is not None
        except yaml.YAMLError:
            bad = True
        if bad:
            raise UsageError(
                f"--env-kwargs {key}: {raw!r} is not a single YAML value",
                "give a number, true/false, null or text; put lists and mappings under "
                "env_kwargs: in a --config file",
            )
        if key in out:
            raise UsageError(f"--env-kwargs {key} given twice", "give each keyword once")
        out[key] = value
    return out


def find_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec, or an EnvError naming the closest registered ids."""
    # gymnasium colours its warnings (the passive env checker's "WARN: ...") with ANSI codes
    # whatever the output: plain text under NO_COLOR (no-color.org) or off a terminal.
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    if os.environ.get("NO_COLOR") or not tty:
        gym.logger.colorize = lambda text, *args, **kwargs: text  # type: ignore[attr-defined]
    env_id = import_env_module(env_id)
    if env_id in gym.registry:
        return gym.registry[env_id]
    close = _close_ids(env_id, sorted(gym.registry))
    hint = (
        f"did you mean {', '.join(close)}?"
        if close
        else "use text-qa or a gymnasium id such as CartPole-v1, Acrobot-v1, MountainCar-v0"
    )
    raise EnvError(f"unknown environment '{env_id}'", hint)


def env_reward_threshold(env_id: str) -> float | None:
    """The return gymnasium's spec calls solved (reward_threshold), or None: none is
    registered, or the id is unknown (creating the env reports that properly)."""
    try:
        threshold = find_spec(env_id).reward_threshold
    except EnvError:
        return None
    return None if threshold is None else float(threshold)


@functools.cache
def _action_space_name(env_id: str, kwargs: tuple[tuple[str, Any], ...]) -> str | None:
    try:
        spec = find_spec(env_id)
        user = is_user_env(spec)  # a user's constructor runs under usercode's rules
        guard = user_code(f"{env_id}'s constructor", EnvError, _FIX_ENV) if user else nullcontext()
        with warnings.catch_warnings(), guard:
            warnings.simplefilter("ignore")
            env = gym.make(spec, disable_env_checker=True, **dict(kwargs))
        try:
            check_spaces(env_id, env.observation_space, env.action_space)  # supported at all
            return type(env.action_space).__name__
        finally:
            env.close()
    except Exception:  # noqa: BLE001 - creating the env for training says what went wrong
        return None


def action_space_name(env_id: str, env_kwargs: dict[str, Any] | None = None) -> str | None:
    """The class name of env_id's action space (Box, Discrete, ...), or None when the env
    cannot be created here (training then reports why)."""
    try:
        key = tuple(sorted((env_kwargs or {}).items()))
        hash(key)
    except TypeError:
        key = ()
    return _action_space_name(env_id, key)


def has_continuous_actions(env_id: str, env_kwargs: dict[str, Any] | None = None) -> bool:
    """Whether env_id's actions are a Box (which defaults an id without a tuned entry gets)."""
    return action_space_name(env_id, env_kwargs) == "Box"


def resolve_vector_mode(spec: gym.envs.registration.EnvSpec, mode: str) -> str:
    """auto -> gymnasium's numpy-vectorized implementation when the env has one, else sync
    (config.validate has checked the mode)."""
    own = spec.id in OWN_VECTOR_ENVS  # ppoqa's numpy-vectorized form (Pendulum-v1)
    if mode == "auto":
        return "vector" if spec.vector_entry_point is not None or own else "sync"
    if mode == "vector" and spec.vector_entry_point is None and not own:
        raise EnvError(
            f"{spec.id} has no numpy-vectorized implementation (vector_entry_point)",
            "use --vector-mode sync, or async for slow environments",
        )
    return mode


def _flattenable(space: gym.Space) -> bool:
    """Spaces FlattenObservation turns into a fixed-size vector this policy can read."""
    if isinstance(space, (gym.spaces.Tuple, gym.spaces.Dict)):
        parts = space.spaces.values() if isinstance(space, gym.spaces.Dict) else space.spaces
        return all(_flattenable(s) for s in parts)
    return isinstance(space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiBinary))


def _unsupported(env_id: str, what: str, space: gym.Space) -> EnvError:
    return EnvError(
        f"{env_id} has a {type(space).__name__} {what} space; {SUPPORTED}",
        "try CartPole-v1, Pendulum-v1, FrozenLake-v1 or Acrobot-v1",
    )


def check_spaces(env_id: str, obs_space: gym.Space, action_space: gym.Space) -> dict[str, Any]:
    """EnvInfo's space fields for these spaces, or an EnvError saying what is supported."""
    if not _flattenable(obs_space):
        raise _unsupported(env_id, "observation", obs_space)
    dims = {"obs_dim": int(gym.spaces.flatdim(obs_space)), "action_start": 0}
    if isinstance(action_space, gym.spaces.Discrete):
        return dims | {"num_actions": int(action_space.n), "action_start": int(action_space.start)}
    if isinstance(action_space, gym.spaces.MultiDiscrete) and action_space.nvec.ndim == 1:
        return dims | {
            "num_actions": len(action_space.nvec),
            "action_kind": "multi_discrete",
            "action_nvec": tuple(int(n) for n in action_space.nvec),
            "action_starts": tuple(int(x) for x in action_space.start),
        }
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise EnvError(
                f"{env_id}: its Box action space is unbounded; ppoqa clips actions to the bounds",
                "give the action space finite low/high",
            )
        return dims | {
            "num_actions": int(action_space.shape[0]),
            "action_kind": "box",
            "action_low": tuple(float(x) for x in low),
            "action_high": tuple(float(x) for x in high),
        }
    raise _unsupported(env_id, "action", action_space)


def make_vec_env(
    env_id: str,
    num_envs: int,
    mode: str = "auto",
    env_kwargs: dict[str, Any] | None = None,
    render_mode: str | None = None,
    max_episode_steps: int | None = None,
) -> tuple[VectorEnv, EnvInfo]:
    """A NEXT_STEP-autoreset vector env of `num_envs` copies of env_id (plain or module:EnvId),
    env_kwargs passed to the env's constructor, checked for support. max_episode_steps: a
    time limit for an env registered without one (EnvInfo.added_time_limit says if it was)."""
    spec = find_spec(env_id)
    added = None
    if max_episode_steps is not None and spec.max_episode_steps is None:
        spec = dataclasses.replace(spec, max_episode_steps=max_episode_steps)
        added = max_episode_steps
    env_kwargs = dict(env_kwargs or {})
    used, own = resolve_vector_mode(spec, mode), None
    if used == "vector" and spec.vector_entry_point is None:
        own = _own_vector_env(spec, num_envs, env_kwargs, render_mode, mode)
        used = "sync" if own is None else used
    vector_kwargs = {} if used == "vector" else {"autoreset_mode": AutoresetMode.NEXT_STEP}
    extra = env_kwargs | ({} if render_mode is None else {"render_mode": render_mode})
    if "mujoco" in str(spec.entry_point):
        say_mujoco_warnings_once()
    user = is_user_env(spec)

    def make(**wrappers: Any) -> VectorEnv:
        return gym.make_vec(spec, num_envs, vectorization_mode=_GYM_MODE[used],
                            vector_kwargs=vector_kwargs, **wrappers, **extra)  # fmt: skip

    try:
        with user_code(f"{env_id}'s constructor", EnvError, _FIX_ENV) if user else nullcontext():
            envs = make() if own is None else own
    except TypeError as exc:  # the constructor rejected a keyword
        if not env_kwargs:
            raise EnvError(
                f"{env_id}: could not be created (TypeError: {exc})", "pick another --env"
            ) from exc
        keys = ", ".join(sorted(env_kwargs))
        raise EnvError(
            f"{env_id}: its constructor rejected --env-kwargs {keys} ({exc})",
            "pass only keywords the environment's __init__ accepts",
        ) from exc
    except EnvError:
        raise
    except Exception as exc:  # missing extras (box2d, mujoco), bad kwarg values, ...
        msg = first_line(exc)
        raise EnvError(
            f"{env_id}: could not be created ({type(exc).__name__}: {msg})",
            _creation_hint(env_id, exc, msg, env_kwargs),
        ) from exc
    try:
        obs_space = envs.single_observation_space
        dims = check_spaces(env_id, obs_space, envs.single_action_space)
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            if used == "vector":  # gymnasium's vector entry points all have flat Box obs
                raise EnvError(
                    f"{env_id}: cannot flatten its observations", "use --vector-mode sync"
                )
            envs.close()
            envs = make(wrappers=[gym.wrappers.FlattenObservation])
        autoreset = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if autoreset != AutoresetMode.NEXT_STEP:
            raise EnvError(
                f"{env_id} ({used}) resets with {autoreset}; ppoqa expects NEXT_STEP autoreset",
                "use --vector-mode sync",
            )
    except BaseException:
        envs.close()
        raise
    return NamedEnvErrors(envs, env_id, user), EnvInfo(
        env_id, vector_mode=used, env_kwargs=env_kwargs, added_time_limit=added, **dims
    )


def _own_vector_env(
    spec: gym.envs.registration.EnvSpec,
    num_envs: int,
    env_kwargs: dict[str, Any],
    render_mode: str | None,
    mode: str,
) -> VectorEnv | None:
    """ppoqa's numpy-vectorized form of spec's env, or None where it does not apply (a render
    mode, a keyword it lacks: the SyncVectorEnv of gymnasium's own copies then runs)."""
    cls, keywords = OWN_VECTOR_ENVS[spec.id]
    unknown = sorted(set(env_kwargs) - set(keywords))
    if render_mode is None and not unknown:
        return cls(num_envs, max_episode_steps=spec.max_episode_steps, **env_kwargs)
    if mode == "vector":
        why = f"--env-kwargs {', '.join(unknown)}" if unknown else "rendering"
        raise EnvError(
            f"{spec.id}'s numpy-vectorized form does not support {why}", "use --vector-mode sync"
        )
    return None


class NamedEnvErrors(gym.vector.VectorWrapper):
    """An exception from the env's own reset() or step() (a user's module, usually) becomes one
    line naming the env and the call, instead of an "unexpected error" that looks like ppoqa's.
    A user's env (not gymnasium's own code) also runs under ppo_cli.usercode's rules: its
    prints go to stderr, sys.exit is an error, a call that blocks is stopped."""

    def __init__(self, env: VectorEnv, env_id: str, user: bool = False) -> None:
        super().__init__(env)
        self.env_id = env_id
        self.user = user
        self.broken = False  # a call of a user's env was interrupted

    def close(self, **kwargs: Any) -> None:
        """AsyncVectorEnv.close() first waits for a pending call, forever when the call was
        stopped because it blocked: after an interrupted call its workers are terminated."""
        if self.broken and isinstance(self.env, AsyncVectorEnv):
            kwargs.setdefault("terminate", True)
        self.env.close(**kwargs)

    def reset(self, **kwargs: Any) -> Any:
        return self._call("reset", self.env.reset, **kwargs)

    def step(self, actions: Any) -> Any:
        out = self._call("step", self.env.step, actions)
        self._check_finite("step", "reward", out[1])
        return out

    def _call(self, call: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """gymnasium's own envs run as they are (no cost per step); a user's under usercode."""
        what = f"{self.env_id}: the env's {call}()"
        try:
            with user_code(what, EnvError, _FIX_ENV) if self.user else nullcontext():
                out = fn(*args, **kwargs)
        except BaseException as exc:
            self.broken = self.broken or self.user  # an async env's workers may be mid-call
            if isinstance(exc, EnvError) or not isinstance(exc, Exception):
                raise
            msg = first_line(exc)
            raise EnvError(
                f"{self.env_id}: the env's {call}() raised {type(exc).__name__}"
                + (f": {msg}" if msg else ""),
                _FIX_ENV,
            ) from exc
        self._check_finite(call, "observation", out[0])
        return out

    def _check_finite(self, call: str, what: str, values: Any) -> None:
        """A NaN or inf from the env would surface later as a torch error about probability
        tensors that names nothing; say which env and which call returned it."""
        arr = np.asarray(values)
        if arr.dtype.kind != "f" or np.isfinite(arr).all():
            return
        bad = arr[~np.isfinite(arr)].flat[0]
        raise EnvError(
            f"{self.env_id}: the env's {call}() returned a{'n' if what[0] == 'o' else ''} "
            f"{what} holding {bad}",
            "the env must return finite numbers; check its "
            + ("dynamics and observation code" if what == "observation" else "reward code"),
        )


_EXTRAS = {
    "box2d": ("LunarLander", "BipedalWalker", "CarRacing"),
    "mujoco": ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid", "Swimmer", "Reacher",
               "InvertedPendulum", "InvertedDoublePendulum", "Pusher"),
}  # fmt: skip


@functools.cache  # each distinct message once per process
def _mujoco_warning(message: str) -> None:
    print(f"MuJoCo warning: {message}", file=sys.stderr)


def say_mujoco_warnings_once() -> None:
    """MuJoCo 3.3+ warns that gymnasium's v5 models use the deprecated `settotalmass` once
    per model compiled: 22 identical stderr lines for one HalfCheetah train. Each distinct
    warning is shown once per process instead."""
    try:
        import mujoco
    except ImportError:  # the "could not be created" path names the extra
        return
    if hasattr(mujoco, "set_mju_user_warning"):
        mujoco.set_mju_user_warning(_mujoco_warning)


_OPENGL = re.compile(r"opengl|\begl\b|glfw|osmesa|mujoco_gl|glgeterror|mjr_makecontext", re.I)


def opengl_hint(message: str) -> str | None:
    """MuJoCo's remedy when an error is about its OpenGL backend (MUJOCO_GL), else None."""
    if not _OPENGL.search(message):
        return None
    chosen = os.environ.get("MUJOCO_GL")
    now = f" (MUJOCO_GL={chosen} is set here)" if chosen else ""
    return (
        "MuJoCo renders with OpenGL: set MUJOCO_GL=egl, or MUJOCO_GL=osmesa with the OSMesa "
        f"library installed, on a machine without a display{now}"
    )


def _creation_hint(env_id: str, exc: Exception, msg: str, env_kwargs: dict[str, Any]) -> str:
    """What to do when the env's constructor raised: the remedy the error points at."""
    if (gl := opengl_hint(msg)) is not None:
        return gl
    missing = isinstance(exc, (ImportError, gym.error.DependencyNotInstalled))
    if env_kwargs and not missing:
        keys = ", ".join(sorted(env_kwargs))
        return f"the env rejected a value: check --env-kwargs {keys}"
    # the ppoqa extra that brings env_id's dependencies, if one does
    extra = next((x for x, ps in _EXTRAS.items() if any(env_id.startswith(p) for p in ps)), None)
    if extra is not None:
        return f"install the {extra} extra: pip install 'ppoqa[{extra}]'"
    if missing:
        return "install the environment's extra dependencies, or pick another --env"
    return "the env's own constructor raised this; fix the env or pick another --env"


def action_mask_from_info(infos: dict[str, Any], info: EnvInfo, num_envs: int) -> Any:
    """[N, A] bool tensor of the actions each sub-env allows now, from the vector env's
    infos["action_mask"] (Taxi, and any env that documents the key the same way)."""
    import torch

    mask = infos.get("action_mask") if isinstance(infos, dict) else None
    if info.action_kind != "discrete" or mask is None:
        raise EnvError(
            f"{info.env_id}: action_mask is on, but the env's info has no 'action_mask'"
            + ("" if info.action_kind == "discrete" else " (and its actions are not Discrete)"),
            "leave action_mask off for this env (--no-action-mask)",
        )
    arr = np.asarray(mask).astype(bool).reshape(num_envs, -1)
    flags = infos.get("_action_mask")
    if flags is not None:  # sub-envs that returned no mask this step allow everything
        arr[~np.asarray(flags, dtype=bool)] = True
    if arr.shape[1] != info.num_actions:
        raise EnvError(
            f"{info.env_id}: info['action_mask'] has {arr.shape[1]} entries for "
            f"{info.num_actions} actions",
            "the env's action_mask must have one entry per action",
        )
    return torch.from_numpy(arr)


class EpisodeTracker:
    """Returns and lengths per sub-env over real transitions only (RecordEpisodeStatistics
    cannot wrap the numpy-vectorized envs, and would count NEXT_STEP's reset step)."""

    def __init__(self, num_envs: int) -> None:
        self.running_return = np.zeros(num_envs, dtype=np.float64)  # [N]
        self.running_length = np.zeros(num_envs, dtype=np.int64)  # [N]
        self.valid = np.ones(num_envs, dtype=bool)  # [N] False: the next step only resets

    def update(self, reward: np.ndarray, done: np.ndarray) -> list[tuple[int, float, int]]:
        """Add one step (real where self.valid); returns (env index, return, length) of every
        episode that just ended. With NEXT_STEP autoreset the step after an end is a reset."""
        valid = self.valid
        self.running_return += np.where(valid, reward, 0.0)
        self.running_length += valid
        ended = np.flatnonzero(done & valid)
        out = [(int(i), float(self.running_return[i]), int(self.running_length[i])) for i in ended]
        self.running_return[ended] = 0.0
        self.running_length[ended] = 0
        self.valid = ~(done & valid)
        return out
