"""The web app's flows through Streamlit's AppTest (no browser), and its helpers.

The flow tests use the scripted engine: they check what the page does with an answer (tables, evidence,
warnings, history, exports), not the model. tests/test_ui_browser.py drives the real embedded engine in Chromium;
tests/test_ui_templates.py covers template upload, confidence and the shared engine.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pymupdf
import pytest
from ui_harness import (
    GOOD,
    GOVERNING,
    Factory,
    app_env_for,
    frame,
    has_frame,
    new_app,
    run_analysis,
    texts,
    upload,
)
from webapp import eval_rows, page_images, runs, uploads
from webapp.evidence import FOUND_STATUSES

from docanalyst.engines import EnginePool
from docanalyst.pipeline import Analyzer
from docanalyst.store import Store

from conftest import SAMPLE_CONTRACT


@pytest.fixture
def app_env(base_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Factory]:
    yield from app_env_for(base_settings, tmp_path, monkeypatch)


# ---- helpers -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("contract.pdf", "contract.pdf"),
        ("../../etc/passwd", "passwd.pdf"),
        ("C:\\Users\\x\\Vertrag für Café.PDF", "Vertrag_fur_Cafe.pdf"),
        ("...", "document.pdf"),
        ("a b;rm -rf *.pdf", "a_b_rm_-rf.pdf"),
        ("x" * 500 + ".pdf", "x" * 96 + ".pdf"),
    ],
)
def test_sanitize_filename(raw: str, safe: str) -> None:
    assert uploads.sanitize_filename(raw) == safe


def test_save_upload_is_content_addressed_and_bounded(tmp_path: Path) -> None:
    data = SAMPLE_CONTRACT.read_bytes()
    first = uploads.save_upload(tmp_path, "../evil name.pdf", data)
    again = uploads.save_upload(tmp_path, "../evil name.pdf", data)
    assert first.path == again.path and first.path.read_bytes() == data
    assert first.path.parent.parent == tmp_path / "uploads" and first.path.name == "evil_name.pdf"
    with pytest.raises(uploads.UploadError, match="over the 1 MB limit"):
        uploads.save_upload(tmp_path, "big.pdf", b"%PDF" + b"0" * (1024 * 1024), max_mb=1)
    with pytest.raises(uploads.UploadError, match="empty"):
        uploads.save_upload(tmp_path, "empty.pdf", b"")


def test_render_page_highlights_the_quote_without_changing_the_file() -> None:
    before = SAMPLE_CONTRACT.read_bytes()
    png, hits = page_images.render_page(SAMPLE_CONTRACT, 2, GOVERNING)
    assert png.startswith(b"\x89PNG") and hits >= 1
    # a quote that wraps across lines in the PDF is still found
    _, wrapped = page_images.render_page(
        SAMPLE_CONTRACT, 1, "between Northwind Analytics Ltd., a company registered in England"
    )
    assert wrapped >= 1
    _, none = page_images.render_page(SAMPLE_CONTRACT, 1, GOVERNING)  # not on page 1
    assert none == 0
    # a word that is everywhere: all of them marked, or only the occurrence grounding located (and boxed)
    _, everywhere = page_images.render_page(SAMPLE_CONTRACT, 1, "Customer")
    _, one = page_images.render_page(SAMPLE_CONTRACT, 1, "Customer", occurrence=2)
    assert everywhere >= 3 and one == 1
    zoomed, _ = page_images.render_page(SAMPLE_CONTRACT, 2, GOVERNING, occurrence=0, zoom=2.0)
    assert zoomed.startswith(b"\x89PNG")
    assert SAMPLE_CONTRACT.read_bytes() == before


# ---- flows ---------------------------------------------------------------------------------------
def field_buttons(at, key: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The workspace's field list: button key -> label."""
    return {b.key: b.label for b in at.button if b.key and b.key.startswith(f"{key}_pick_")}


def pick(at, key: str, label: str) -> None:  # type: ignore[no-untyped-def]
    """Click the field whose readable label is ``label``."""
    [button] = [k for k, text in field_buttons(at, key).items() if f"**{label}**" in text]
    at.button(key=button).click().run()


def test_upload_budget_run_results_evidence_and_exports(app_env: Factory, tmp_path: Path) -> None:
    at = new_app()
    assert at.title[0].value.endswith("docanalyst")
    assert not has_frame(at, "budget_table")
    upload(at, ("../Northwind Agreement.pdf", SAMPLE_CONTRACT.read_bytes()))
    budget = frame(at, "budget_table")
    assert list(budget["document"]) == ["Northwind_Agreement.pdf"]
    assert budget["pages"][0] == 2 and budget["verdict"][0] == "✓ fits"
    saved = list((tmp_path / "home" / "uploads").glob("*/*.pdf"))
    assert [p.name for p in saved] == ["Northwind_Agreement.pdf"]  # a sanitised name, under the home
    assert at.button(key="run").label == "Analyse 1 document(s)" and not at.button(key="run").disabled

    run_analysis(at)
    assert texts(at, "error") == []
    buttons = field_buttons(at, "res1")
    assert any(label.startswith("✓ **Governing law** · New York") for label in buttons.values())
    assert any(label.startswith("✗ **Liability cap**") for label in buttons.values())  # quote not in the document
    # ungrounded values are called out plainly, and the run's evidence has a verdict
    assert any("not found in the document" in w and "liability_cap" in w for w in texts(at, "warning"))
    assert any("different page" in w for w in texts(at, "warning"))
    assert any(m.startswith("Evidence: :") and "value(s) backed by a quote" in m for m in texts(at, "markdown"))

    # the workspace opens on the first verified field; a click on another shows its page with the span boxed
    assert at.session_state["res1_field"] == "parties[0]"
    pick(at, "res1", "Governing law")
    assert not at.exception
    assert "Evidence: ✓ exact match on the cited page" in texts(at, "markdown")
    images = at.get("image")
    assert images, "no page image"
    assert images[0].captions == ["page 2 of 2: the evidence for Governing law is boxed"]
    pick(at, "res1", "Liability cap")
    assert "the quote is not on this page" in at.get("image")[0].captions[0]
    # the filter narrows the list to what needs a look
    at.radio(key="res1_filter").set_value("Unverified").run()
    assert all(not label.startswith("✓") for label in field_buttons(at, "res1").values())

    downloads = at.get("download_button")
    assert {d.proto.label for d in downloads} >= {"Export JSON", "Export CSV"}
    assert len(app_env.engines) == 1 and len(app_env.engines[0].requests) == 1


def test_second_run_reuses_the_stored_one_and_force_recomputes(app_env: Factory) -> None:
    at = upload(new_app(), ("a.pdf", SAMPLE_CONTRACT.read_bytes()))
    run_analysis(at)
    run_analysis(at)
    assert any("reused run 1" in n for n in texts(at, "info"))
    at.checkbox(key="force").check().run()
    run_analysis(at)
    assert "res2_field" in at.session_state and at.session_state["results"]["run_ids"] == [2]  # the new run
    assert len(app_env.engines[0].requests) == 2  # one engine for the whole server, loaded once


def test_invalid_model_output_is_shown_as_one_plain_line(app_env: Factory) -> None:
    app_env.answers = [('{"parties": "nope"}', "stop")]
    at = upload(new_app(), ("a.pdf", SAMPLE_CONTRACT.read_bytes()))
    run_analysis(at)
    # one message, with the run, naming no server path, with one next step; no traceback, no second red copy
    assert texts(at, "error") == []
    problems = [w for w in texts(at, "warning") if "status 'invalid'" in w]  # the Analyse tab and History
    assert len(set(problems)) == 1
    problem = problems[0]
    assert "not valid after one re-ask" in problem and "Traceback" not in problem and "/uploads/" not in problem
    assert "Next: analyse again with 'Recompute stored runs'" in problem


def test_encrypted_pdf_asks_for_the_password(app_env: Factory, tmp_path: Path) -> None:
    doc = pymupdf.open(SAMPLE_CONTRACT)
    locked = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="s3cret", owner_pw="owner")
    doc.close()
    at = upload(new_app(), ("locked.pdf", locked))
    assert any("encrypted" in w for w in texts(at, "warning"))
    assert frame(at, "budget_table")["verdict"][0] == "password needed"
    assert at.button(key="run").disabled
    box = at.text_input[0]
    assert box.label == "Password for locked.pdf"
    box.input("wrong").run()
    assert any("the password is wrong" in w for w in texts(at, "warning"))
    at.text_input[0].input("s3cret").run()
    assert frame(at, "budget_table")["verdict"][0] == "✓ fits"
    run_analysis(at)
    pick(at, "res1", "Governing law")
    assert at.get("image")[0].captions == [
        "page 2 of 2: the evidence for Governing law is boxed"
    ]  # the page renders with the password


def test_over_budget_and_unreadable_files_are_explained(app_env: Factory) -> None:
    doc = pymupdf.open()
    for i in range(40):
        doc.new_page().insert_textbox(pymupdf.Rect(40, 40, 560, 800), f"Clause {i}. " + "The party shall pay. " * 120)
    long_pdf = doc.tobytes()
    doc.close()
    at = upload(new_app(), ("long.pdf", long_pdf), ("notes.pdf", b"this is not a pdf at all"))
    budget = frame(at, "budget_table")
    assert budget["verdict"][0].startswith("✗ too-long")
    assert budget["verdict"][1] == "✗ unreadable"
    assert any("over budget" in w and "8,192-token window" in w for w in texts(at, "warning"))
    assert any("not a PDF" in e for e in texts(at, "error"))
    assert at.button(key="run").disabled


def test_pages_without_text_are_warned_about(app_env: Factory) -> None:
    doc = pymupdf.open(SAMPLE_CONTRACT)
    page = doc.new_page()
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 50, 50), False)
    pix.clear_with(0)  # a new Pixmap is uninitialised memory, which OCR now and then read as text (flaky)
    page.insert_image(pymupdf.Rect(50, 50, 300, 300), pixmap=pix)
    scanned = doc.tobytes()
    doc.close()
    at = upload(new_app(), ("scan.pdf", scanned))
    shown = texts(at, "warning") + texts(at, "error") + texts(at, "info")
    assert any("no text layer on 1 of 3 page(s) (3)" in w for w in texts(at, "warning")), shown


def test_history_reopen_compare_delete(app_env: Factory, tmp_path: Path) -> None:
    at = upload(new_app(), ("a.pdf", SAMPLE_CONTRACT.read_bytes()))
    run_analysis(at)
    app_env.engines[0].answers = [(GOOD.replace("New York", "Delaware"), "stop")] * 5
    at.checkbox(key="force").check().run()
    run_analysis(at)

    history = frame(at, "history_table")
    assert list(history["run"]) == [2, 1]
    assert list(history["status"]) == ["ok", "ok"]
    assert at.selectbox(key="history_open").value == 2
    at.selectbox(key="history_open").set_value(1).run()
    assert any(label.startswith("✓ **Governing law** · New York") for label in field_buttons(at, "hist1").values())

    compared = frame(at, "compare_table")
    law = compared[compared["field"] == "governing_law"].iloc[0]
    assert (law["run 1 value"], law["run 2 value"], law["same"]) == ("New York", "Delaware", "≠")
    assert compared["run 1 confidence"].isna().all()  # the scripted engine gives no log-probabilities
    assert any("1 of" in c and "differ" in c for c in texts(at, "caption"))

    assert at.button(key="del_button").disabled
    at.selectbox(key="del_pick").set_value(1).run()
    at.checkbox(key="del_sure").check().run()
    at.button(key="del_button").click().run()
    assert not at.exception
    assert list(frame(at, "history_table")["run"]) == [2]
    store = Store(f"sqlite:///{tmp_path / 'ui.db'}")
    assert store.get_run(1) is None and store.get_run(2) is not None


def test_evaluations_tab_shows_stored_evaluations_and_survives_run_deletion(app_env: Factory, tmp_path: Path) -> None:
    """An evaluation on a labelled folder (scripted answer: this checks the page and the bookkeeping, the real
    engine's evaluations are in test_eval_engine.py), then the Evaluations tab, then deleting its run."""
    from docanalyst.config import Settings
    from docanalyst.evaluation.datasets import load_custom
    from docanalyst.evaluation.runner import evaluate
    from docanalyst.pipeline import ExtractOptions

    at = new_app()
    assert any("No evaluations stored yet" in t for t in texts(at, "info"))
    folder = tmp_path / "labelled"
    folder.mkdir()
    (folder / "a.pdf").write_bytes(SAMPLE_CONTRACT.read_bytes())
    (folder / "labels.csv").write_text(
        "file,parties,governing_law,effective_date,notice_period,renewal\n"
        "a.pdf,Northwind Analytics Ltd.;Bluefin Logistics Inc.,New York,2025-03-03,30 days,\n"
    )
    settings = Settings.from_env()
    with EnginePool(settings, app_env) as pool:
        analyzer = Analyzer(settings, pool=pool)
        result = evaluate(analyzer, load_custom(folder, None, "contract"), ExtractOptions())
        analyzer.close()
    assert result.summary()["totals"] == {
        "right": 5, "wrong": 0, "missing": 0, "spurious": 0, "absent_ok": 1,
        "precision": 1.0, "recall": 1.0, "f1": 1.0,
        "claims": 5, "claims_without_confidence": 5, "aupr": None, "precision_at_80_recall": None,
    }  # fmt: skip

    at = new_app()
    listed = frame(at, "eval_table")
    assert (list(listed["evaluation"]), list(listed["F1 %"])) == ([1], [100.0])
    assert listed["AUPR %"].isna().all() and listed["P@80%R %"].isna().all()  # the scripted engine gives no scores
    fields = frame(at, "eval_fields")
    assert list(fields["field"]) == ["parties", "governing_law", "effective_date", "notice_period", "renewal",
                                     "(all fields)"]  # fmt: skip
    assert list(fields["right"]) == [2, 1, 1, 1, 0, 5] and list(fields["rightly absent"]) == [0, 0, 0, 0, 1, 1]
    documents = frame(at, "eval_documents")
    assert (documents.iloc[0]["document"], documents.iloc[0]["status"], documents.iloc[0]["run"]) == (
        "a.pdf",
        "scored",
        1,
    )
    assert eval_rows.evaluation_markdown(*Store(settings.db_url).get_evaluation(1)).startswith(
        "# Evaluation 1: `labelled`"
    )

    at.selectbox(key="del_pick").set_value(1).run()
    at.checkbox(key="del_sure").check().run()
    at.button(key="del_button").click().run()
    assert not at.exception
    loaded = Store(settings.db_url).get_evaluation(1)
    assert loaded is not None and loaded[1][0].run_id is None  # the evaluation keeps its scores
    assert list(frame(at, "eval_fields")["right"])[-1] == 5


def test_exports_are_complete(app_env: Factory, tmp_path: Path) -> None:
    at = upload(new_app(), ("a.pdf", SAMPLE_CONTRACT.read_bytes()))
    run_analysis(at)
    view = runs.load_run(Store(f"sqlite:///{tmp_path / 'ui.db'}"), 1)
    assert view is not None
    record = json.loads(runs.export_json([view]))
    assert record["run_id"] == 1 and record["result"]["governing_law"]["quote_status"] in FOUND_STATUSES
    assert {f["path"] for f in record["fields"]} >= {"governing_law", "parties[0]"}
    rows = list(csv.DictReader(io.StringIO(runs.export_csv([view]))))
    law = next(r for r in rows if r["field"] == "governing_law")
    assert (law["value"], law["page"]) == ("New York", "2") and law["quote_status"] in FOUND_STATUSES
    assert len(rows) == len(view.fields)


@pytest.mark.skipif(not hasattr(Analyzer, "ask"), reason="Analyzer.ask is not in this version")
def test_question_box_answers_with_a_highlighted_citation(app_env: Factory) -> None:
    at = upload(new_app(), ("a.pdf", SAMPLE_CONTRACT.read_bytes()))
    run_analysis(at)
    answer = json.dumps(
        {
            "answer": "The laws of New York govern it.",
            "citations": [{"value": "New York", "quote": GOVERNING, "page": 2}],
        }
    )
    app_env.engines[0].answers = [(answer, "stop")] * 3
    at.text_input(key="res1_question").input("Which law governs the agreement?")
    at.button(key="res1_ask").click()  # the question box is a form: the text goes with the click
    at.run(timeout=120)
    assert not at.exception, at.exception
    assert "**Q1:** Which law governs the agreement?" in texts(at, "markdown")  # the stored thread
    assert "**A1:** The laws of New York govern it." in texts(at, "markdown")
    assert any(label.startswith("✓ **Citations 1** · New York") for label in field_buttons(at, "res1_answer2").values())
    assert any(i.captions == ["page 2 of 2: the evidence for Citations 1 is boxed"] for i in at.get("image"))
