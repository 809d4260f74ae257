"""Where a study lives: an Optuna storage opened from `--storage URL`, with the guarantees a
shared sweep needs and Optuna does not give by itself.

- SQLite (the default, one machine): every transaction starts with BEGIN IMMEDIATE. Optuna
  claims a waiting trial by reading its state and then writing RUNNING; with pysqlite's default
  (a transaction only begins at the write) two processes can both read WAITING and both claim it.
  An immediate transaction takes the write lock before the read, so claims are serialized.
- PostgreSQL / MySQL: Optuna locks the trial row (SELECT ... FOR UPDATE) while claiming.
- `journal:PATH`: Optuna's journal file (one append-only log, file-locked), for a disk several
  machines share; its replay orders competing claims, and only the first one wins.

RDB storages get Optuna's heartbeat: a running trial records one every `heartbeat` seconds, and
one silent for three intervals is failed by the next worker and queued again (a SIGKILLed
worker's trial is trained by someone else). The journal storage has no heartbeat in Optuna;
there a silent trial is reported as stale and stays so.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppo_cli.errors import ConfigError, PpoqaError

INSTALL_HINT = "install the sweep extra: pip install 'ppoqa[sweep]'"
JOURNAL_PREFIX = "journal:"


class StorageError(PpoqaError):
    """A storage URL that cannot be opened, or a study that is not there."""

    code = "storage"


def import_optuna() -> Any:
    """Optuna, quiet (its INFO lines and experimental warnings are not ours to print)."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "ppoqa sweep needs Optuna, which is not installed", INSTALL_HINT
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    # We run the heartbeat ourselves (worker._heartbeat), outside Study.optimize, on purpose.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    return optuna


def display_url(url: str) -> str:
    """The URL with its password masked, for messages."""
    if url.startswith(JOURNAL_PREFIX):
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def default_storage_url(out: Path) -> str:
    return f"sqlite:///{out / 'study.db'}"


def _normalize_url(url: str) -> str:
    """postgresql://... uses psycopg (3), the driver the sweep extra installs, unless psycopg2
    is there (SQLAlchemy's default for the plain scheme)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            try:
                import psycopg2  # noqa: F401
            except ImportError:
                return "postgresql+psycopg://" + url[len(plain) :]
            return "postgresql://" + url[len(plain) :]
    return url


def _sqlite_path(url: str, shown: str) -> Path | None:
    """The file of a SQLite URL, None for another database. An in-memory SQLite database lives
    only as long as one connection: the study would be lost before its report."""
    if not url.startswith("sqlite:"):
        return None
    try:
        from sqlalchemy.engine import make_url

        db = make_url(url).database
    except Exception as exc:
        raise StorageError(f"--storage {shown}: not a storage URL ({exc})", _URL_HINT) from None
    if not db or db == ":memory:" or "mode=memory" in url:
        raise StorageError(
            f"--storage {shown}: an in-memory SQLite database lives only as long as one "
            "connection, so the study would be lost before its report",
            "give a file, e.g. --storage sqlite:///study.db (the default is OUT/study.db)",
        )
    return Path(db)


def _serialize_sqlite(engine: Any) -> None:
    """BEGIN IMMEDIATE for every transaction (SQLAlchemy's documented pysqlite recipe)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listeners are not reused


@dataclass
class OpenedStorage:
    url: str
    storage: Any  # what optuna.create_study / load_study take
    heartbeat: bool  # whether Optuna's heartbeat (and stale-trial recovery) is on


def open_storage(
    url: str,
    *,
    create: bool = True,
    heartbeat: int | None = None,
    on_stale: Callable[[Any, Any], None] | None = None,
) -> OpenedStorage:
    """Open (or, with create, make) the storage at url; one line with a hint when it cannot."""
    optuna = import_optuna()
    shown = display_url(url)
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX) :]).expanduser()
        if not path.name:
            raise StorageError(
                f"--storage {shown}: no file named", "e.g. journal:/shared/sweep.log"
            )
        _check_exists(path, shown, create)
        _check_journal(path, shown)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = optuna.storages.journal.JournalFileBackend(str(path))
        except OSError as exc:
            raise StorageError(
                f"--storage {shown}: cannot open ({exc.strerror or exc})",
                "check the path and its permissions",
            ) from None
        return OpenedStorage(url, optuna.storages.JournalStorage(backend), heartbeat=False)

    full = _normalize_url(url)
    db = _sqlite_path(full, shown)
    engine_kwargs: dict[str, Any] = {}
    if db is not None:
        _check_exists(db, shown, create)
        if create:
            with contextlib.suppress(OSError):
                db.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": 120}
    elif full.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    kwargs: dict[str, Any] = {"engine_kwargs": engine_kwargs}
    if heartbeat is not None:
        import inspect

        params = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
        stale = "heartbeat_stale_trial_callback"  # failed_trial_callback in older Optunas
        kwargs.update(heartbeat_interval=heartbeat, grace_period=3 * heartbeat)
        kwargs[stale if stale in params else "failed_trial_callback"] = on_stale  # None: default
    try:
        _check_schema(full, shown, db, create)
        with _creation_lock(db if create else None):
            storage = _create_rdb(optuna, full, kwargs)
    except StorageError:
        raise
    except ImportError as exc:
        raise StorageError(
            f"--storage {shown}: its database driver is missing ({exc.name or exc})",
            "pip install 'ppoqa[sweep]' (PostgreSQL: psycopg)",
        ) from None
    except Exception as exc:  # sqlalchemy's errors: bad URL, refused connection, bad password
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        raise StorageError(
            f"--storage {shown}: cannot open the storage ({reason})", _URL_HINT
        ) from None
    if db is not None:
        _serialize_sqlite(storage.engine)
    return OpenedStorage(url, storage, heartbeat=heartbeat is not None)


def _check_exists(path: Path, shown: str, create: bool) -> None:
    """Reading (--report, plot) never creates the file it reads."""
    if not create and not path.is_file():
        raise StorageError(
            f"--storage {shown}: {path} does not exist",
            "give --storage where the study lives, or start it with `ppoqa sweep --search ...`",
        )


def _check_journal(path: Path, shown: str) -> None:
    """A file that is there already must be an Optuna journal: its first line one JSON object
    with an op_code. Anything else is the user's, and Optuna would append to it."""
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return
        with path.open("rb") as fh:
            first = fh.readline(65536)
    except OSError:
        return  # open_storage reports what is wrong with the path
    try:
        doc = json.loads(first)
        ours = isinstance(doc, dict) and "op_code" in doc
    except ValueError:
        ours = False
    if not ours:
        raise StorageError(
            f"--storage {shown}: {path} exists and is not an Optuna journal; it was left unchanged",
            "give a new file name, e.g. --storage journal:sweep.log",
        )


_OPTUNA_TABLES = ("studies", "trials", "version_info")


def _check_schema(url: str, shown: str, db: Path | None, create: bool) -> None:
    """Never add Optuna's tables to a database that is someone else's. Reading (--report,
    plot) needs them there already; a sweep may create them only in a new or empty SQLite
    file (a shared PostgreSQL database is the user's to prepare, so it is left to Optuna)."""
    if (create and db is None) or (db is not None and (not db.is_file() or db.stat().st_size == 0)):
        return  # the user's server, or a new database (reading one that is missing was refused)
    from sqlalchemy import create_engine, inspect

    engine = create_engine(
        f"sqlite:///file:{db}?mode=ro&uri=true" if db is not None else url,
        **({"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}),
    )
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if set(_OPTUNA_TABLES) <= tables or (create and not tables):
        return
    what = f"{db}" if db is not None else "the database"
    raise StorageError(
        f"--storage {shown}: {what} holds no Optuna study"
        + (f" (it has other tables: {', '.join(sorted(tables)[:3])})" if tables else "")
        + "; it was left unchanged",
        "give the storage a sweep wrote (default OUT/study.db), or a new file for a new sweep",
    )


# Two workers opening a new database at once race to create Optuna's tables; the loser sees
# "already exists" (SQLite) or a duplicate key in the catalog (PostgreSQL) and simply retries.
_CREATION_RACE = ("already exists", "duplicate key", "unique constraint", "database is locked")


@contextlib.contextmanager
def _creation_lock(db: Path | None) -> Any:
    """Workers on one machine open a SQLite file one at a time (flock on the file itself, which
    SQLite's own fcntl locks do not see), so only one of them creates Optuna's tables."""
    if db is None:
        yield
        return
    try:
        fh = open(db, "ab")  # noqa: SIM115  (an empty file is a valid new SQLite database)
    except OSError:
        yield  # let Optuna report the problem with the path
        return
    with fh:
        import fcntl

        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _create_rdb(optuna: Any, url: str, kwargs: dict[str, Any]) -> Any:
    import random
    import time

    for _ in range(9):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except Exception as exc:
            text = str(getattr(exc, "orig", None) or exc).lower()
            if not any(r in text for r in _CREATION_RACE):
                raise
            time.sleep(0.2 + random.random() * 0.5)
    return optuna.storages.RDBStorage(url, **kwargs)  # the tenth try: its error propagates


_URL_HINT = (
    "give sqlite:///PATH.db, postgresql://USER:PASSWORD@HOST:PORT/DB (server running?) "
    "or journal:PATH"
)


def load_study(opened: OpenedStorage, name: str, **kwargs: Any) -> Any:
    """The study, or one line naming the studies that are there."""
    optuna = import_optuna()
    try:
        return optuna.load_study(study_name=name, storage=opened.storage, **kwargs)
    except KeyError:
        names = optuna.get_all_study_names(storage=opened.storage)
        have = f"it holds: {', '.join(sorted(names)[:8])}" if names else "it holds no study yet"
        raise StorageError(
            f"--study {name!r}: no such study in {display_url(opened.url)}",
            f"{have}; start one with `ppoqa sweep --search ...`",
        ) from None


def worker_id() -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"
