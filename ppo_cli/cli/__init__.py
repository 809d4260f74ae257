"""The `ppoqa` command line: thin Typer commands over the ppo_cli core."""

from __future__ import annotations

import os
import sys
from contextlib import suppress
from typing import Annotated, Any

import typer

from ppo_cli import __version__
from ppo_cli.cli.ask import ask_command
from ppo_cli.cli.common import (
    STDOUT_HINT,
    DataStdout,
    PpoqaGroup,
    say_stdout_failed,
    stdout_failure,
)
from ppo_cli.cli.compare import compare_command
from ppo_cli.cli.doctor import doctor_command
from ppo_cli.cli.eval import eval_command
from ppo_cli.cli.explain import (
    explain_advantage_command,
    explain_clip_command,
    explain_gae_command,
)
from ppo_cli.cli.explain_reward import explain_reward_command
from ppo_cli.cli.help import PpoqaCommand
from ppo_cli.cli.plot import plot_command
from ppo_cli.cli.sft import sft_command
from ppo_cli.cli.sweep import sweep_command
from ppo_cli.cli.train import train_command

app = typer.Typer(
    cls=PpoqaGroup,
    name="ppoqa",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ppoqa {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Train PPO agents on text question answering or gymnasium tasks, and watch them learn."""


app.command("train", cls=PpoqaCommand)(train_command)
app.command("sft", cls=PpoqaCommand)(sft_command)
app.command("eval", cls=PpoqaCommand)(eval_command)
app.command("ask", cls=PpoqaCommand)(ask_command)
app.command("explain-gae", cls=PpoqaCommand)(explain_gae_command)
app.command("explain-clip", cls=PpoqaCommand)(explain_clip_command)
app.command("explain-reward", cls=PpoqaCommand)(explain_reward_command)
app.command("explain-advantage", cls=PpoqaCommand)(explain_advantage_command)
app.command("plot", cls=PpoqaCommand)(plot_command)
app.command("doctor", cls=PpoqaCommand)(doctor_command)
app.command("sweep", cls=PpoqaCommand)(sweep_command)
app.command("compare", cls=PpoqaCommand)(compare_command)


def main() -> None:
    """The console script. Once a command has finished and its output is flushed, the process
    ends with os._exit: after `import torch`, the interpreter's own teardown (freeing every
    module and object) takes about 0.7 s on the project's 2-core machine, a quarter of
    `ppoqa train` on the built-in set. Every file ppoqa writes is closed by then. `sweep` is
    left to the normal exit, since its storage backends (SQLAlchemy, Optuna's journal) may
    clean up in atexit handlers."""
    if sys.stdout is None:  # started with stdout closed (`>&-`): results would be lost
        with suppress(OSError, ValueError, AttributeError):
            sys.stderr.write(f"ppoqa: error: stdout is closed (hint: {STDOUT_HINT})\n")
        os._exit(1)
    sys.stdout = DataStdout(sys.stdout)  # type: ignore[assignment]
    try:
        app()
        code: Any = 0
    except SystemExit as done:
        code = done.code
    failure = stdout_failure()  # what is still buffered must reach stdout, or exit 1
    if failure is not None and code in (0, None):
        code = say_stdout_failed(failure)
    if "torch" not in sys.modules or "sweep" in sys.argv[1:2]:
        sys.exit(code)
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message") prints it and exits 1
        with suppress(OSError, ValueError):
            print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a reader that went away (`| head`)
            stream.flush()
    os._exit(code)
