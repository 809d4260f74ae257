"""`ppoqa eval --record PATH`: greedy episodes of a gymnasium run as an animation.

.gif is written with Pillow (matplotlib already depends on it); .mp4 needs an encoder: the
`ffmpeg` program on PATH, or imageio with its ffmpeg plugin. The frames come from the env's
`rgb_array` rendering; an env without it gets a clear error before anything is played."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppo_cli.core.policy import ActorCritic
from ppo_cli.errors import EnvError, RunError, UsageError, first_line
from ppo_cli.files import current_umask
from ppo_cli.gym.envs import make_vec_env, opengl_hint
from ppo_cli.gym.evaluate import greedy_action
from ppo_cli.gym.normalize import Normalizer

FORMATS = (".gif", ".mp4")


def check_record_path(path: Path) -> None:
    """Refuse what we cannot or must not write, before any episode is played."""
    if path.suffix.lower() not in FORMATS:
        raise UsageError(
            f"--record {path}: unknown format {path.suffix or '(no suffix)'!r}",
            "end the path with .gif or .mp4",
        )
    if path.exists() or path.is_symlink():
        raise RunError(
            f"--record {path}: already exists", "ppoqa never overwrites; pick a new path"
        )
    if not path.parent.is_dir():
        raise RunError(f"--record {path}: folder {path.parent} does not exist", "create it first")
    if path.suffix.lower() == ".mp4" and _mp4_encoder() is None:
        raise RunError(
            f"--record {path}: no mp4 encoder found (neither ffmpeg nor imageio-ffmpeg)",
            "install ffmpeg or `pip install imageio[ffmpeg]`, or record a .gif",
        )


def _mp4_encoder() -> str | None:
    if shutil.which("ffmpeg"):
        return "ffmpeg"
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return None
    return "imageio"


@torch.no_grad()
def record_episodes(
    policy: ActorCritic,
    env_id: str,
    path: Path,
    episodes: int = 1,
    seed: int = 1000,
    env_kwargs: dict[str, Any] | None = None,
    normalizer_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Play `episodes` greedy episodes from `seed`, write them to path; returns a summary."""
    check_record_path(path)
    # pygame (classic-control/toy-text rendering) greets on stdout and probes for a display:
    # stdout is data here, and rgb_array needs no window.
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    headless_opengl_default(os.environ, sys.platform)
    probe, _ = make_vec_env(env_id, 1, "sync", env_kwargs)
    modes = list(probe.metadata.get("render_modes") or [])
    probe.close()
    if "rgb_array" not in modes:
        raise EnvError(
            f"--record: {env_id} has no rgb_array rendering (render modes: "
            f"{', '.join(modes) or 'none'})",
            "record an env that renders images, e.g. CartPole-v1 or Pendulum-v1",
        )
    envs, info = make_vec_env(env_id, 1, "sync", env_kwargs, render_mode="rgb_array")
    norm = Normalizer.frozen_from(normalizer_state, info.obs_dim, 1)
    device = next(policy.parameters()).device
    frames: list[np.ndarray] = []
    returns: list[float] = []
    try:
        fps = int(envs.metadata.get("render_fps") or 30)
        for k in range(episodes):
            obs, infos = envs.reset(seed=seed + k)
            frames.append(_frame(envs, env_id))
            total, done = 0.0, False
            while not done and len(frames) < 5000:  # cap: 20 MB of gif at CartPole's size
                x = norm.obs(np.asarray(obs, dtype=np.float32).reshape(1, -1))
                action = greedy_action(policy, torch.from_numpy(x).to(device), infos, info, 1)
                obs, reward, term, trunc, infos = envs.step(info.to_env(action.cpu().numpy()))
                total += float(reward[0])
                done = bool(term[0] or trunc[0])
                frames.append(_frame(envs, env_id))
            returns.append(total)
    finally:
        envs.close()
    _write(path, frames, fps)
    return {"record": str(path), "episodes": len(returns), "frames": len(frames),
            "returns": returns}  # fmt: skip


def headless_opengl_default(environ: Any, platform: str) -> None:
    """MuJoCo renders through OpenGL, and gymnasium's first choice, GLFW, fails on a Linux
    machine without a display: EGL (off-screen) is the default there unless MUJOCO_GL is set."""
    has_display = environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")
    if platform.startswith("linux") and not has_display:
        environ.setdefault("MUJOCO_GL", "egl")


def render_failure_hint(message: str) -> str:
    """The remedy that fits why rendering failed: an OpenGL backend for MuJoCo, else pygame."""
    pygame = "pip install 'ppoqa[render]' (pygame) for the classic-control and toy-text envs"
    return opengl_hint(message) or pygame


def _frame(envs: Any, env_id: str) -> np.ndarray:
    try:
        out = envs.render()
    except Exception as exc:  # e.g. pygame missing for classic-control rendering
        msg = first_line(exc) or type(exc).__name__
        raise EnvError(
            f"--record: {env_id} could not render ({msg})", render_failure_hint(msg)
        ) from exc
    frame = out[0] if isinstance(out, (tuple, list)) else out
    if frame is None:
        raise EnvError(f"--record: {env_id} rendered no image", "pick an env with rgb_array")
    return np.asarray(frame, dtype=np.uint8)


def _write(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """Write to a temp file next to path, then rename: no half-written animation is left. A
    folder that is read-only or full is named with the path, in one line."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=".ppoqa-", suffix=path.suffix, dir=path.parent)
    except OSError as exc:
        raise RunError(
            f"--record {path}: cannot write in {path.parent} ({exc.strerror or exc})",
            "record into a folder you can write to",
        ) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _write_frames(path, tmp, frames, fps)
    except OSError as exc:
        raise RunError(
            f"--record {path}: writing the animation failed ({exc.strerror or exc})",
            "free some space, or record fewer --record-episodes or into another folder",
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def _write_frames(path: Path, tmp: Path, frames: list[np.ndarray], fps: int) -> None:
    if path.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(
            tmp, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
        )
    else:
        _write_mp4(tmp, frames, fps)
    if path.exists():
        raise RunError(f"--record {path}: appeared while recording", "pick a new path")
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; an animation is for sharing
    os.replace(tmp, path)


def _write_mp4(tmp: Path, frames: list[np.ndarray], fps: int) -> None:
    h, w = frames[0].shape[:2]
    h2, w2 = h - h % 2, w - w % 2  # yuv420p needs even sizes
    if _mp4_encoder() == "ffmpeg":
        cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{w2}x{h2}", "-r", str(fps), "-i", "-", "-pix_fmt", "yuv420p",
               str(tmp)]  # fmt: skip
        data = b"".join(np.ascontiguousarray(f[:h2, :w2, :3]).tobytes() for f in frames)
        proc = subprocess.run(cmd, input=data, capture_output=True)
        if proc.returncode != 0:
            raise RunError(
                f"--record: ffmpeg failed ({proc.stderr.decode(errors='replace').strip()[:200]})",
                "record a .gif instead",
            )
        return
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(str(tmp), (w2, h2), fps=fps)
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f[:h2, :w2, :3]))
    writer.close()
