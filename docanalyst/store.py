"""SQLite storage through SQLModel; the schema is owned by Alembic migrations (never ``create_all``).

A run is written in one transaction together with its field rows, so a crash leaves either the whole
run or nothing. Runs are looked up by (document, template version, schema hash, profile, model) so the
same question is not recomputed unless asked to.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, event, func
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from docanalyst.errors import StoreError


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
    status: str = Field(index=True)  # ok | invalid | truncated | failed
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
    docanalyst_version: str
    created_at: datetime = Field(default_factory=_now, sa_type=DateTime(timezone=True))

    @property
    def result(self) -> dict[str, Any] | None:
        return json.loads(self.result_json) if self.result_json else None

    @property
    def timings(self) -> dict[str, Any]:
        return dict(json.loads(self.timings_json or "{}"))


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
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()


def migrate(db_url: str) -> None:
    """Bring the database to the newest schema (idempotent). Processes opening a new SQLite file at the
    same moment (two batch runs, the UI) take turns through a lock file, or both would create the tables."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", db_url)
    cfg.attributes["configure_logger"] = False
    if not db_url.startswith("sqlite:///"):
        command.upgrade(cfg, "head")
        return
    import fcntl

    lock_path = Path(db_url.removeprefix("sqlite:///")).expanduser().with_suffix(".migrate.lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            command.upgrade(cfg, "head")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Store:
    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        if db_url.startswith("sqlite:///"):
            Path(db_url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            migrate(db_url)
            self.engine = create_engine(db_url)
        except Exception as exc:
            raise StoreError(f"cannot open the database {db_url}: {exc}") from exc
        if db_url.startswith("sqlite"):
            _sqlite_pragmas(self.engine)

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
        with Session(self.engine) as session:
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
                f"could not store the run: {str(exc).splitlines()[0]}",
                path=document.path,
                document_id=document.sha256[:12],
            ) from exc

    def _save_run(self, document: DocumentRow, run: RunRow, fields: Sequence[FieldRow]) -> int:
        with Session(self.engine) as session, session.begin():
            # An upsert, not read-then-insert: two processes storing the first run of one new document at
            # the same moment must both succeed (measured: 32-39 of 60 such runs were lost with read-then-insert).
            values = document.model_dump()
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
                session.add(row)
            run_id = run.id
        return run_id

    def get_run(self, run_id: int) -> tuple[RunRow, DocumentRow, list[FieldRow]] | None:
        with Session(self.engine) as session:
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
            raise StoreError(f"could not store the evaluation: {str(exc).splitlines()[0]}") from exc

    def get_evaluation(self, evaluation_id: int) -> tuple[EvaluationRow, list[EvaluationItemRow]] | None:
        with Session(self.engine) as session:
            evaluation = session.get(EvaluationRow, evaluation_id)
            if evaluation is None:
                return None
            stmt = select(EvaluationItemRow).where(EvaluationItemRow.evaluation_id == evaluation_id)
            return evaluation, list(session.exec(stmt.order_by(col(EvaluationItemRow.id))))

    def list_evaluations(self, limit: int = 50) -> list[EvaluationRow]:
        with Session(self.engine) as session:
            return list(session.exec(select(EvaluationRow).order_by(col(EvaluationRow.id).desc()).limit(limit)))

    def list_runs(self, limit: int = 50) -> list[tuple[RunRow, DocumentRow]]:
        with Session(self.engine) as session:
            stmt = (
                select(RunRow, DocumentRow)
                .join(DocumentRow, col(DocumentRow.sha256) == col(RunRow.document_sha256))
                .order_by(col(RunRow.id).desc())
                .limit(limit)
            )
            return [(r, d) for r, d in session.exec(stmt)]
