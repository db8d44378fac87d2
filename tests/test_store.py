import pytest

from docanalyst.errors import StoreError
from docanalyst.store import DocumentRow, FieldRow, RunRow, Store


def run_row(sha: str, status: str = "ok") -> RunRow:
    return RunRow(
        document_sha256=sha,
        template="contract",
        template_version=1,
        template_sha256="t",
        schema_hash="s",
        profile="embedded",
        model="m",
        sampling_json="{}",
        status=status,
        docanalyst_version="0",
        result_json='{"a": 1}',
    )


def test_migrations_are_idempotent_and_runs_round_trip(db_url: str) -> None:
    store = Store(db_url)
    Store(db_url)  # second open: nothing to migrate
    doc = DocumentRow(sha256="f" * 64, path="a.pdf", pages=3, chars=10)
    run_id = store.save_run(
        doc, run_row(doc.sha256), [FieldRow(run_id=0, path="x", quote_status="exact", quote_found=True, page=2)]
    )
    run, got_doc, fields = store.get_run(run_id)  # type: ignore[misc]
    assert run.result == {"a": 1} and got_doc.pages == 3 and fields[0].page == 2
    assert store.find_cached("f" * 64, "contract", 1, "s", "embedded", "m").id == run_id  # type: ignore[union-attr]
    assert store.find_cached("f" * 64, "contract", 2, "s", "embedded", "m") is None
    failed = store.save_run(
        DocumentRow(sha256="f" * 64, path="a.pdf", pages=3, chars=10), run_row("f" * 64, "invalid"), []
    )
    assert store.find_cached("f" * 64, "contract", 1, "s", "embedded", "m").id == run_id  # type: ignore[union-attr]
    assert [r.id for r, _ in store.list_runs()] == [failed, run_id]


def test_a_failing_write_leaves_nothing_half_written(db_url: str) -> None:
    store = Store(db_url)
    doc = DocumentRow(sha256="e" * 64, path="b.pdf", pages=1, chars=1)
    bad_field = FieldRow(run_id=0, path="x", quote_status=None)  # type: ignore[arg-type]  NOT NULL violation
    with pytest.raises(StoreError, match="could not store the run"):
        store.save_run(doc, run_row(doc.sha256), [bad_field])
    assert store.list_runs() == []
    assert store.get_run(1) is None


def test_unusable_database_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError, match="cannot open the database"):
        Store(f"sqlite:///{tmp_path / 'dir.db'}")


def test_an_unreachable_server_is_a_clear_error(postgres_server: str) -> None:
    port = postgres_server.rsplit(":", 1)[1].split("/")[0]
    wrong = postgres_server.replace(f":{port}/", ":1/")
    with pytest.raises(StoreError, match=r"cannot open the database postgresql\+psycopg://docanalyst@127.0.0.1:1/"):
        Store(wrong)


def test_text_the_database_cannot_hold_is_stored_escaped(db_url: str) -> None:
    """A NUL (which PostgreSQL's text refuses) or a file name that is not UTF-8 never loses the run."""
    store = Store(db_url)
    doc = DocumentRow(sha256="d" * 64, path="caf\udce9.pdf", pages=1, chars=1)
    field = FieldRow(run_id=0, path="x", value="a\x00b", quote_status="not_found")
    _run, got_doc, fields = store.get_run(store.save_run(doc, run_row(doc.sha256), [field]))  # type: ignore[misc]
    assert (got_doc.path, fields[0].value) == ("caf\\xe9.pdf", "a\\x00b")
