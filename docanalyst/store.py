"""SQLite storage through SQLModel; the schema is owned by Alembic migrations (never ``create_all``).

A run is written in one transaction together with its field rows, so a crash leaves either the whole
run or nothing. Runs are looked up by (document, template version, schema hash, profile, model) so the
same question is not recomputed unless asked to.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, func
from sqlalchemy.exc import NoSuchModuleError
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from docanalyst import __version__
from docanalyst.database import (
    is_memory,
    make_folder,
    migrate,
    parse_url,
    plain_db_error,
    plain_errors,
    sqlite_file,
    sqlite_pragmas,
    storable_text,
    upsert,
)
from docanalyst.display import show_path, storable
from docanalyst.errors import ConfigError, StoreError
from docanalyst.grounding import GroundedField
from docanalyst.runs import RunKey, RunRecord, StoredRun
from docanalyst.statuses import RunStatus


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
    # The answer's token texts and log-probabilities (confidence.pack): a stored run can be scored again with
    # another aggregation. NULL for runs stored before confidences (migration 0005) and engines without them.
    token_logprobs_json: str | None = None
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
    # The value's confidence in [0, 1] (confidence.py); NULL for runs stored before migration 0005.
    confidence: float | None = None


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


class Store:
    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        url = parse_url(db_url)
        shown = url.render_as_string(hide_password=True)
        path = sqlite_file(url)
        if path is not None:
            make_folder(path.parent)
        try:
            if is_memory(url):
                # One connection for the process's life: every new connection to :memory: is another, empty database.
                self.engine = create_engine(db_url, poolclass=StaticPool, connect_args={"check_same_thread": False})
                sqlite_pragmas(self.engine)
                with self.engine.begin() as connection:
                    migrate(db_url, connection)
            else:
                migrate(db_url)
                self.engine = create_engine(db_url)
                if url.get_backend_name() == "sqlite":
                    sqlite_pragmas(self.engine)
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
        statuses: Sequence[str] = (RunStatus.OK,),
        question: str | None = None,
    ) -> RunRow | None:
        with plain_errors("could not read the stored runs"), Session(self.engine) as session:
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
            storable_text(run)
            insert = upsert(self.engine, DocumentRow).values(**values)
            insert = insert.on_conflict_do_update(
                index_elements=["sha256"],
                set_={
                    "path": insert.excluded.path,
                    "tokens": func.coalesce(insert.excluded.tokens, DocumentRow.tokens),
                },
            )
            session.exec(insert)
            session.add(run)
            session.flush()
            assert run.id is not None
            for row in fields:
                row.run_id = run.id
                storable_text(row)
                session.add(row)
            run_id = run.id
        return run_id

    def store_run(self, record: RunRecord) -> int:
        """A finished run with its document and grounded fields, in one transaction; returns the run id."""
        return self.save_run(_document_row(record), _run_row(record), [_field_row(f) for f in record.fields])

    def find_run(self, key: RunKey, statuses: Sequence[str] = (RunStatus.OK,)) -> StoredRun | None:
        """The newest stored run that answers this question (one of ``statuses``), with its grounded fields."""
        run = self.find_cached(
            key.document_sha256,
            key.template,
            key.template_version,
            key.schema_hash,
            key.profile,
            key.model,
            statuses=statuses,
            question=key.question,
        )
        if run is None or run.id is None:
            return None
        loaded = self.get_run(run.id)
        usage = {name: getattr(run, name) or 0 for name in ("prompt_tokens", "cached_tokens", "completion_tokens")}
        fields = [grounded_field(f) for f in loaded[2]] if loaded else []
        groups = json.loads(run.sampling_json or "{}").get("field_groups")  # field groups' usage (field_groups.py)
        return StoredRun(run.id, RunStatus(run.status), run.result, run.missing, usage, run.timings, fields, groups)

    def get_run(self, run_id: int) -> tuple[RunRow, DocumentRow, list[FieldRow]] | None:
        with plain_errors("could not read the run"), Session(self.engine) as session:
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
        with plain_errors("could not read the evaluation"), Session(self.engine) as session:
            evaluation = session.get(EvaluationRow, evaluation_id)
            if evaluation is None:
                return None
            stmt = select(EvaluationItemRow).where(EvaluationItemRow.evaluation_id == evaluation_id)
            return evaluation, list(session.exec(stmt.order_by(col(EvaluationItemRow.id))))

    def list_evaluations(self, limit: int = 50) -> list[EvaluationRow]:
        with plain_errors("could not read the evaluations"), Session(self.engine) as session:
            return list(session.exec(select(EvaluationRow).order_by(col(EvaluationRow.id).desc()).limit(limit)))

    def list_runs(self, limit: int = 50) -> list[tuple[RunRow, DocumentRow]]:
        with plain_errors("could not read the stored runs"), Session(self.engine) as session:
            stmt = (
                select(RunRow, DocumentRow)
                .join(DocumentRow, col(DocumentRow.sha256) == col(RunRow.document_sha256))
                .order_by(col(RunRow.id).desc())
                .limit(limit)
            )
            return [(r, d) for r, d in session.exec(stmt)]


# ---- typed runs <-> rows: the only place either is turned into the other --------------------------------------
def _document_row(record: RunRecord) -> DocumentRow:
    doc = record.document
    return DocumentRow(
        sha256=doc.sha256, path=doc.path, title=doc.title, pages=doc.page_count, chars=doc.char_count,
        tokens=record.document_tokens,
    )  # fmt: skip


def _run_row(record: RunRecord) -> RunRow:
    key, answered, usage = record.key, record.result is not None, record.usage
    return RunRow(
        document_sha256=key.document_sha256, template=key.template, template_version=key.template_version,
        template_sha256=record.template_sha256, schema_hash=key.schema_hash, profile=key.profile, model=key.model,
        sampling_json=json.dumps(dict(record.sampling)), status=record.status, error=record.error,
        attempts=record.attempts, prompt_tokens=usage.get("prompt_tokens"), cached_tokens=usage.get("cached_tokens"),
        completion_tokens=usage.get("completion_tokens"), ttft_s=record.timings.get("ttft_s"),
        total_s=record.timings.get("total_s"), timings_json=json.dumps(dict(record.timings)),
        result_json=json.dumps(record.result) if answered else None, raw_output=record.raw_output,
        docanalyst_version=__version__, question=key.question,
        quotes_total=record.grounding.quotes if answered else None,
        quotes_found=record.grounding.found if answered else None, grounding_rate=record.grounding.rate,
        missing_json=json.dumps(list(record.missing)) if record.status == RunStatus.PARTIAL else None,
        token_logprobs_json=record.token_logprobs_json,
    )  # fmt: skip


def _field_row(f: GroundedField) -> FieldRow:
    return FieldRow(
        run_id=0, path=f.path, value=f.value, quote=f.quote, page=f.page, quote_found=f.quote_found,
        quote_status=f.status, found_page=f.found_page, page_match=f.page_match, span_start=f.span_start,
        span_end=f.span_end, score=f.score, confidence=f.confidence,
    )  # fmt: skip


def grounded_field(row: FieldRow) -> GroundedField:
    return GroundedField(
        # the stored word as it is: databases from before migration 0002 hold older words ("found")
        row.path, row.value, row.quote, row.page, row.quote_status, row.found_page,  # type: ignore[arg-type]
        row.span_start, row.span_end, row.score, row.confidence,
    )  # fmt: skip
