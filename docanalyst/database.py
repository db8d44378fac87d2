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

from sqlalchemy import URL, Connection, Engine, event, make_url, text
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
    """Bring the database to the newest schema (idempotent). Processes opening a new database at the same
    moment (two batch runs, the UI) take turns, or both would create the tables: through a lock file beside a
    SQLite file, through an advisory lock in PostgreSQL. An in-memory database is migrated on the ``connection``
    that will keep it (no lock, no file)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    cfg.attributes["connection"] = connection
    url = parse_url(db_url)
    if connection is not None:
        _upgrade(cfg)
    elif url.get_backend_name() == "postgresql":
        _upgrade_postgresql(cfg, url)
    else:
        _upgrade_sqlite(cfg, sqlite_file(url))


def _upgrade(cfg: Any) -> None:
    from alembic import command

    command.upgrade(cfg, "head")


# pg_advisory_lock's key: any 64-bit number that other applications sharing the server are unlikely to use
_MIGRATION_LOCK = 0x646F63616E616C79  # "docanaly"


def _upgrade_postgresql(cfg: Any, url: URL) -> None:
    """The migrations on one connection that holds a session-level advisory lock: a second process waits for the
    first one's upgrade to commit, then finds nothing to do. PostgreSQL's DDL is transactional, so a failed
    upgrade leaves the schema as it was."""
    from sqlalchemy import create_engine, pool

    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            conn.commit()
            try:
                cfg.attributes["connection"] = conn
                _upgrade(cfg)
                conn.commit()
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
                conn.commit()
    finally:
        engine.dispose()


def _upgrade_sqlite(cfg: Any, path: Path | None) -> None:
    if path is None:  # a file: URI
        _upgrade(cfg)
        return
    import fcntl

    try:
        lock = path.with_suffix(".migrate.lock").open("a")
    except OSError:  # a read-only folder: nobody can create tables there, so nobody needs to take turns
        _upgrade(cfg)
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _upgrade(cfg)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upsert(engine: Engine, table: Any) -> Any:
    """``INSERT … ON CONFLICT`` for this engine's database: SQLite's and PostgreSQL's share the SQLAlchemy API
    (``on_conflict_do_update``, ``excluded``); the one place that knows there are two."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


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
