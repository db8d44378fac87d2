"""SQLite storage through SQLModel; the schema is owned by Alembic migrations (never ``create_all``).

A run is written in one transaction together with its field rows, so a crash leaves either the whole
run or nothing. Runs are looked up by (document, template version, schema hash, profile, model) so the
same question is not recomputed unless asked to.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, DateTime, Engine, event, func, make_url
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from docanalyst.display import show_path, storable
from docanalyst.errors import ConfigError, StoreError


def _now() -> datetime:
    return datetime.now(UTC)


class DocumentRow(SQLModel, table=True):
    __tablename__ = "documents"

    sha256: str = Field(primary_key=True, max_length=64)
    path: str
    title: str | None = None
    pages: int
    chars: int
    tokens: int | None = None
    created_at: datetime = Field(default_factory=_now, sa_type=DateTime(timezone=True))


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"

    id: int | None = Field(default=None, primary_key=True)
    document_sha256: str = Field(foreign_key="documents.sha256", index=True)
    template: str
    template_version: int
    template_sha256: str
    schema_hash: str
    profile: str
    model: str
    sampling_json: str
    status: str = Field(index=True)  # ok | partial | invalid | truncated | failed | ungrounded
    error: str | None = None
    attempts: int = 1
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None
    total_s: float | None = None
    timings_json: str = "{}"
    result_json: str | None = None
    raw_output: str | None = None
    question: str | None = None  # for `ask` runs; part of the cache key
    quotes_total: int | None = None
    quotes_found: int | None = None
    grounding_rate: float | None = None
    missing_json: str | None = None  # partial runs: the top-level fields the answer did not deliver
    docanalyst_version: str
    created_at: datetime = Field(default_factory=_now, sa_type=DateTime(timezone=True))

    @property
    def result(self) -> dict[str, Any] | None:
        return json.loads(self.result_json) if self.result_json else None

    @property
    def timings(self) -> dict[str, Any]:
        return dict(json.loads(self.timings_json or "{}"))

    @property
    def missing(self) -> list[str]:
        return list(json.loads(self.missing_json)) if self.missing_json else []


class FieldRow(SQLModel, table=True):
    __tablename__ = "fields"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    path: str
    value: str | None = None
    quote: str | None = None
    page: int | None = None
    quote_found: bool = False
    quote_status: str
    found_page: int | None = None
    page_match: bool = False
    span_start: int | None = None
    span_end: int | None = None
    score: float | None = None


class EvaluationRow(SQLModel, table=True):
    """One ``docanalyst eval`` run: what was measured with what, and the per-field figures."""

    __tablename__ = "evaluations"

    id: int | None = Field(default=None, primary_key=True)
    dataset: str
    dataset_path: str
    template: str
    template_version: int
    schema_hash: str
    profile: str
    model: str
    documents: int
    scored: int
    skipped: int
    failed: int
    summary_json: str  # totals, per-field counts and P/R/F1, grounding, tokens, time
    docanalyst_version: str
    created_at: datetime = Field(default_factory=_now, sa_type=DateTime(timezone=True))

    @property
    def summary(self) -> dict[str, Any]:
        return dict(json.loads(self.summary_json))


class EvaluationItemRow(SQLModel, table=True):
    """One document of an evaluation: its status, the run that answered, and each field's score."""

    __tablename__ = "evaluation_items"

    id: int | None = Field(default=None, primary_key=True)
    evaluation_id: int = Field(foreign_key="evaluations.id", index=True)
    name: str
    document_sha256: str | None = None
    run_id: int | None = Field(default=None, foreign_key="runs.id")
    status: str  # scored | failed | skipped | unreadable
    run_status: str | None = None
    error: str | None = None
    scores_json: str = "[]"
    excluded_json: str = "{}"
    pages: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_s: float | None = None
    quotes_total: int | None = None
    quotes_found: int | None = None


def _sqlite_pragmas(engine: Engine) -> None:
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


def _parse_url(db_url: str) -> URL:
    try:
        return make_url(db_url)
    except ArgumentError:
        raise ConfigError(
            f"not a database URL: {db_url!r} (a file is written sqlite:////absolute/path.db or sqlite:///relative.db)"
        ) from None


def _is_memory(url: URL) -> bool:
    """``sqlite://`` and ``sqlite:///:memory:``: a database that lives as long as the process."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _sqlite_file(url: URL) -> Path | None:
    """The file of a plain SQLite URL; None for other databases, in-memory ones and ``file:`` URIs."""
    if url.get_backend_name() != "sqlite" or _is_memory(url) or not url.database:
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
    path = _sqlite_file(_parse_url(db_url))
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
def _plain_errors(action: str) -> Iterator[None]:
    """Database failures (a locked, damaged or vanished file) as one StoreError line, never SQL."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"{action}: {plain_db_error(exc)}") from exc


def _make_folder(folder: Path) -> None:
    if folder.is_dir():
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "a file of that name is in the way" if isinstance(exc, FileExistsError) else exc.strerror
        raise StoreError(f"cannot create the folder {show_path(folder)} for the database: {reason}") from exc


def _storable_text(row: SQLModel) -> None:
    """Text columns SQLite can take: a file name that is not UTF-8 (or a message quoting it) shown with escapes."""
    for name in type(row).model_fields:
        value = getattr(row, name)
        if isinstance(value, str):
            setattr(row, name, storable(value))


class Store:
    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        url = _parse_url(db_url)
        shown = url.render_as_string(hide_password=True)
        path = _sqlite_file(url)
        if path is not None:
            _make_folder(path.parent)
        try:
            if _is_memory(url):
                # One connection for the process's life: every new connection to :memory: is another, empty database.
                self.engine = create_engine(db_url, poolclass=StaticPool, connect_args={"check_same_thread": False})
                _sqlite_pragmas(self.engine)
                with self.engine.begin() as connection:
                    migrate(db_url, connection)
            else:
                migrate(db_url)
                self.engine = create_engine(db_url)
                if url.get_backend_name() == "sqlite":
                    _sqlite_pragmas(self.engine)
        except (NoSuchModuleError, ModuleNotFoundError) as exc:
            raise ConfigError(f"no driver for the database {shown}: {exc}") from exc
        except Exception as exc:  # SQLAlchemy, Alembic or the OS; the cause matters, not the statement
            raise StoreError(f"cannot open the database {show_path(shown)}: {plain_db_error(exc)}") from exc

    def find_cached(
        self,
        sha256: str,
        template: str,
        template_version: int,
        schema_hash: str,
        profile: str,
        model: str,
        statuses: Sequence[str] = ("ok",),
        question: str | None = None,
    ) -> RunRow | None:
        with _plain_errors("could not read the stored runs"), Session(self.engine) as session:
            stmt = (
                select(RunRow)
                .where(
                    RunRow.document_sha256 == sha256,
                    RunRow.template == template,
                    RunRow.template_version == template_version,
                    RunRow.schema_hash == schema_hash,
                    RunRow.profile == profile,
                    RunRow.model == model,
                    col(RunRow.status).in_(list(statuses)),
                    col(RunRow.question).is_(None) if question is None else RunRow.question == question,
                )
                .order_by(col(RunRow.id).desc())
            )
            return session.exec(stmt).first()

    def save_run(self, document: DocumentRow, run: RunRow, fields: Sequence[FieldRow]) -> int:
        """Document upsert + run + field rows in one transaction; returns the run id."""
        try:
            return self._save_run(document, run, fields)
        except Exception as exc:  # the transaction rolled back: nothing half-written
            raise StoreError(
                f"could not store the run: {plain_db_error(exc)}",
                path=document.path,
                document_id=document.sha256[:12],
            ) from exc

    def _save_run(self, document: DocumentRow, run: RunRow, fields: Sequence[FieldRow]) -> int:
        with Session(self.engine) as session, session.begin():
            # An upsert, not read-then-insert: two processes storing the first run of one new document at
            # the same moment must both succeed (measured: 32-39 of 60 such runs were lost with read-then-insert).
            values = {k: storable(v) if isinstance(v, str) else v for k, v in document.model_dump().items()}
            _storable_text(run)
            upsert = sqlite_insert(DocumentRow).values(**values)
            upsert = upsert.on_conflict_do_update(
                index_elements=["sha256"],
                set_={
                    "path": upsert.excluded.path,
                    "tokens": func.coalesce(upsert.excluded.tokens, DocumentRow.tokens),
                },
            )
            session.exec(upsert)
            session.add(run)
            session.flush()
            assert run.id is not None
            for row in fields:
                row.run_id = run.id
                _storable_text(row)
                session.add(row)
            run_id = run.id
        return run_id

    def get_run(self, run_id: int) -> tuple[RunRow, DocumentRow, list[FieldRow]] | None:
        with _plain_errors("could not read the run"), Session(self.engine) as session:
            run = session.get(RunRow, run_id)
            if run is None:
                return None
            doc = session.get(DocumentRow, run.document_sha256)
            assert doc is not None
            fields = list(session.exec(select(FieldRow).where(FieldRow.run_id == run_id).order_by(col(FieldRow.id))))
            return run, doc, fields

    def save_evaluation(self, evaluation: EvaluationRow, items: Sequence[EvaluationItemRow]) -> int:
        """The evaluation and all its items in one transaction (a crash leaves none of it). The rows stay usable
        afterwards (``expire_on_commit=False``): the caller keeps them as its in-memory result."""
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                session.add(evaluation)
                session.flush()
                assert evaluation.id is not None
                for item in items:
                    item.evaluation_id = evaluation.id
                    session.add(item)
                return evaluation.id
        except Exception as exc:
            raise StoreError(f"could not store the evaluation: {plain_db_error(exc)}") from exc

    def get_evaluation(self, evaluation_id: int) -> tuple[EvaluationRow, list[EvaluationItemRow]] | None:
        with _plain_errors("could not read the evaluation"), Session(self.engine) as session:
            evaluation = session.get(EvaluationRow, evaluation_id)
            if evaluation is None:
                return None
            stmt = select(EvaluationItemRow).where(EvaluationItemRow.evaluation_id == evaluation_id)
            return evaluation, list(session.exec(stmt.order_by(col(EvaluationItemRow.id))))

    def list_evaluations(self, limit: int = 50) -> list[EvaluationRow]:
        with _plain_errors("could not read the evaluations"), Session(self.engine) as session:
            return list(session.exec(select(EvaluationRow).order_by(col(EvaluationRow.id).desc()).limit(limit)))

    def list_runs(self, limit: int = 50) -> list[tuple[RunRow, DocumentRow]]:
        with _plain_errors("could not read the stored runs"), Session(self.engine) as session:
            stmt = (
                select(RunRow, DocumentRow)
                .join(DocumentRow, col(DocumentRow.sha256) == col(RunRow.document_sha256))
                .order_by(col(RunRow.id).desc())
                .limit(limit)
            )
            return [(r, d) for r, d in session.exec(stmt)]
