"""The database underneath the store: URLs, SQLite's settings, migrations, and plain one-line errors.

Apart from store.py so that the store is its tables and its methods; nothing here knows a table.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, event, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import SQLModel

from docanalyst.display import show_path, storable
from docanalyst.errors import ConfigError, StoreError


def sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
            # A read-only file is read as it is (a write then says "read-only").
            with contextlib.suppress(sqlite3.OperationalError):
                cur.execute("PRAGMA journal_mode=WAL")
        cur.close()


def parse_url(db_url: str) -> URL:
    try:
        return make_url(db_url)
    except ArgumentError:
        raise ConfigError(
            f"not a database URL: {db_url!r} (a file is written sqlite:////absolute/path.db or sqlite:///relative.db)"
        ) from None


def is_memory(url: URL) -> bool:
    """``sqlite://`` and ``sqlite:///:memory:``: a database that lives as long as the process."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def sqlite_file(url: URL) -> Path | None:
    """The file of a plain SQLite URL; None for other databases, in-memory ones and ``file:`` URIs."""
    if url.get_backend_name() != "sqlite" or is_memory(url) or not url.database:
        return None
    return None if url.database.startswith("file:") else Path(url.database)


# What SQLite says, and what a person needs to hear; anything else: the first line of the driver's message.
_PLAIN_DB_ERRORS = (
    ("readonly database", "the database is read-only"),
    ("file is not a database", "not a database file"),
    ("unable to open database file", "cannot open the database file (is its folder writable?)"),
    ("database is locked", "the database is busy: another process held it for more than 10 s"),
    ("database or disk is full", "the disk is full"),
    ("disk I/O error", "a disk I/O error"),
)


def plain_db_error(exc: BaseException) -> str:
    """One line, no SQL: SQLAlchemy's messages carry the statement, its parameters and a help link."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, OSError) and orig.strerror:
        return orig.strerror
    lines = str(orig).strip().splitlines()
    text = lines[0] if lines else type(orig).__name__
    return next((phrase for needle, phrase in _PLAIN_DB_ERRORS if needle in text), text)


def migrate(db_url: str, connection: Connection | None = None) -> None:
    """Bring the database to the newest schema (idempotent). Processes opening a new SQLite file at the
    same moment (two batch runs, the UI) take turns through a lock file beside it, or both would create the
    tables. An in-memory database is migrated on the ``connection`` that will keep it (no lock, no file)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    cfg.attributes["connection"] = connection
    path = sqlite_file(parse_url(db_url))
    if connection is not None or path is None:
        command.upgrade(cfg, "head")
        return
    import fcntl

    try:
        lock = path.with_suffix(".migrate.lock").open("a")
    except OSError:  # a read-only folder: nobody can create tables there, so nobody needs to take turns
        command.upgrade(cfg, "head")
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            command.upgrade(cfg, "head")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def plain_errors(action: str) -> Iterator[None]:
    """Database failures (a locked, damaged or vanished file) as one StoreError line, never SQL."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"{action}: {plain_db_error(exc)}") from exc


def make_folder(folder: Path) -> None:
    if folder.is_dir():
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "a file of that name is in the way" if isinstance(exc, FileExistsError) else exc.strerror
        raise StoreError(f"cannot create the folder {show_path(folder)} for the database: {reason}") from exc


def storable_text(row: SQLModel) -> None:
    """Text columns SQLite can take: a file name that is not UTF-8 (or a message quoting it) shown with escapes."""
    for name in type(row).model_fields:
        value = getattr(row, name)
        if isinstance(value, str):
            setattr(row, name, storable(value))
