"""Several processes write runs into one database (a SQLite file, then a real PostgreSQL server) at the same moment
(two batch jobs and the UI, say): no run is lost, none is written twice, every run keeps its own field rows, and
the database stays intact.

Two races that store.py once had are pinned here (both fixed: an upsert and a migration lock):
the first run of one document stored by two processes at the same instant (the document row used to be read then
inserted, so the second insert violated the primary key and that run was lost), and two processes opening a
fresh database at once (both ran the Alembic migrations; one failed with "table documents already exists").
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from docanalyst.errors import StoreError
from docanalyst.store import DocumentRow, FieldRow, RunRow, Store

WRITERS = 3
RUNS_EACH = 200
FIELDS_EACH = 3
SHARED_DOCUMENTS = 4  # stored before the writers start; every writer then adds runs to them too


def sha(name: str) -> str:
    return name.encode().hex().ljust(64, "0")[:64]


def one_run(writer: int, i: int, name: str | None = None) -> tuple[DocumentRow, RunRow, list[FieldRow]]:
    name = name or (f"shared-{(i // 2) % SHARED_DOCUMENTS}" if i % 2 else f"w{writer}-{i}")
    doc = DocumentRow(sha256=sha(name), path=f"{name}.pdf", pages=1, chars=10)
    run = RunRow(
        document_sha256=doc.sha256,
        template="contract",
        template_version=1,
        template_sha256="t",
        schema_hash="s",
        profile="embedded",
        model="m",
        sampling_json=json.dumps({"writer": writer, "i": i}),
        status="ok",
        docanalyst_version="0",
        result_json=json.dumps({"writer": writer, "i": i}),
    )
    fields = [
        FieldRow(run_id=0, path=f"f{k}", value=f"{writer}/{i}/{k}", quote_status="found", quote_found=True)
        for k in range(FIELDS_EACH)
    ]
    return doc, run, fields


def writer_process(url: str, writer: int, start: Any, results: Any) -> None:
    store = Store(url)
    start.wait()
    saved: list[tuple[int, int]] = []
    failed: list[str] = []
    for i in range(RUNS_EACH):
        try:
            saved.append((i, store.save_run(*one_run(writer, i))))
        except StoreError as exc:
            failed.append(str(exc))
    results.put(("writer", writer, saved, failed))


def reader_process(url: str, start: Any, stop: Any, results: Any) -> None:
    """The UI: lists and opens runs while the writers write."""
    store = Store(url)
    start.wait()
    reads, errors = 0, []
    while not stop.is_set():
        try:
            for run, _doc in store.list_runs(20):
                assert run.id is not None
                got = store.get_run(run.id)
                assert got is not None and len(got[2]) == FIELDS_EACH
            reads += 1
        except Exception as exc:  # anything at all is a failure here
            errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.01)
    results.put(("reader", reads, errors))


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Read the database behind the store's back: plain SQL on a connection of its own."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_concurrent_writers_lose_and_duplicate_nothing(db_url: str) -> None:
    url = db_url
    store = Store(url)  # migrated once, as the first process to start would do
    for k in range(SHARED_DOCUMENTS):  # documents already known, as after an earlier batch
        store.save_run(*one_run(-1, 2 * k + 1))
    ctx = mp.get_context("spawn")
    start, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    writers = [ctx.Process(target=writer_process, args=(url, w, start, results)) for w in range(WRITERS)]
    reader = ctx.Process(target=reader_process, args=(url, start, stop, results))
    for p in [*writers, reader]:
        p.start()
    time.sleep(1.0)  # every process has opened the store; now all write at once
    started = time.monotonic()
    start.set()
    outcomes = [results.get(timeout=240) for _ in writers]
    elapsed = time.monotonic() - started
    stop.set()
    reader_outcome = results.get(timeout=60)
    for p in [*writers, reader]:
        p.join(timeout=30)
        assert p.exitcode == 0

    failed = [msg for *_, f in outcomes for msg in f]
    returned_ids = [run_id for _, _, saved, _ in outcomes for _, run_id in saved]
    rows = query(url, "select id, sampling_json from runs")
    markers = [tuple(json.loads(s).values()) for _, s in rows]
    fields_per_run = dict(query(url, "select run_id, count(*) from fields group by run_id"))  # type: ignore[arg-type]
    field_values = {v for (v,) in query(url, "select value from fields")}
    documents = query(url, "select count(*) from documents")[0][0]
    sqlite = url.startswith("sqlite")
    integrity = query(url, "pragma integrity_check") if sqlite else [("ok",)]
    foreign = query(url, "pragma foreign_key_check") if sqlite else []  # PostgreSQL checks them on every write
    journal = query(url, "pragma journal_mode")[0][0] if sqlite else "wal"

    expected = {(w, i) for w in range(WRITERS) for i in range(RUNS_EACH)}
    expected |= {(-1, 2 * k + 1) for k in range(SHARED_DOCUMENTS)}
    lost = expected - set(markers)
    duplicated = len(markers) - len(set(markers))
    print(
        f"\nconcurrency: {WRITERS} writers x {RUNS_EACH} runs in {elapsed:.1f} s, reader passes "
        f"{reader_outcome[1]}: {len(lost)} lost, {duplicated} duplicated, {len(failed)} failed saves"
    )
    assert failed == []
    assert lost == set() and duplicated == 0 and len(rows) == len(expected)
    assert len(returned_ids) == len(set(returned_ids)) == WRITERS * RUNS_EACH  # each save returned its own row
    assert set(returned_ids) <= {run_id for run_id, _ in rows}
    assert fields_per_run == {run_id: FIELDS_EACH for run_id, _ in rows}
    assert len(field_values) == len(expected) * FIELDS_EACH  # every field row belongs to its own run
    assert documents == WRITERS * (RUNS_EACH // 2) + SHARED_DOCUMENTS
    assert integrity == [("ok",)] and foreign == [] and journal == "wal"
    assert reader_outcome[2] == [] and reader_outcome[1] > 0


def first_store_process(url: str, writer: int, rounds: int, barrier: Any, results: Any) -> None:
    store = Store(url)
    failed = []
    for r in range(rounds):
        barrier.wait()  # every writer stores the first run of the same new document at the same instant
        try:
            store.save_run(*one_run(writer, r, name=f"new-{r}"))
        except StoreError as exc:
            failed.append(str(exc))
    results.put(failed)


def test_first_runs_of_one_document_stored_at_the_same_instant(db_url: str) -> None:
    url = db_url
    Store(url)
    rounds = 20
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(WRITERS), ctx.Queue()
    procs = [ctx.Process(target=first_store_process, args=(url, w, rounds, barrier, results)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    failed = [msg for _ in procs for msg in results.get(timeout=120)]
    for p in procs:
        p.join(timeout=30)
    runs = query(url, "select count(*) from runs")[0][0]
    print(f"\nsimultaneous first runs: {len(failed)} of {WRITERS * rounds} lost")
    assert failed == [] and runs == WRITERS * rounds


def opener_process(url: str, start: Any, results: Any) -> None:
    start.wait()
    try:
        Store(url)
        results.put("ok")
    except StoreError as exc:
        results.put(str(exc))


def test_first_open_by_several_processes_at_once(new_database: Callable[[], str]) -> None:
    """Batch jobs started together on a fresh database all run the migrations (3 fresh databases, 3 openers
    each): a lock file beside a SQLite file, an advisory lock in PostgreSQL."""
    answers = []
    ctx = mp.get_context("spawn")
    for _attempt in range(3):
        url = new_database()
        start, results = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=opener_process, args=(url, start, results)) for _ in range(WRITERS)]
        for p in procs:
            p.start()
        time.sleep(1.0)
        start.set()
        answers += [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
    print(f"\nsimultaneous first opens: {sum(a != 'ok' for a in answers)} of {len(answers)} failed")
    assert answers == ["ok"] * len(answers)
