"""`docanalyst eval` end to end with real engines: the embedded model on CUAD and on the papers (a small
limit, as CI runs it), the stored evaluation and report, a rerun that reuses the stored answers, a
comparison; the Qwen3-Next profiles through the same command (dry run at 256K, tiny dummy engine)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docanalyst import cli
from docanalyst.evaluation.datasets import resolve
from docanalyst.evaluation.fields import FIELD_SPECS
from docanalyst.evaluation.scoring import score_result

from conftest import CORPUS, count_calls

CUAD_DIR = CORPUS / "contracts" / "cuad"

pytestmark = pytest.mark.engine


@pytest.fixture
def eval_env(db_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("DOCANALYST_CORPUS", str(CORPUS))
    return db_env


def invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli.app, args)
    return result.exit_code, result.stdout, result.stderr


def db_rows(db_url: str, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        return conn.execute(sql).fetchall()


def check_scores_match_the_stored_run(db_url: str, evaluation_id: int, dataset: str) -> None:
    """What was stored as scores is what scoring the stored run's answer gives."""
    data = resolve(dataset, CORPUS)
    cases = {c.name: c for c in data.cases}
    items = db_rows(
        db_url,
        f"SELECT i.name, i.scores_json, r.result_json FROM evaluation_items i JOIN runs r ON r.id = i.run_id "
        f"WHERE i.evaluation_id = {evaluation_id}",
    )
    assert items
    for name, scores_json, result_json in items:
        expected = score_result(json.loads(result_json), cases[name].labels, FIELD_SPECS[data.template])
        assert json.loads(scores_json) == [s.as_dict() for s in expected]


def test_eval_cuad_limit_2_then_rerun_and_compare(cli_pool, embedded_engine, eval_env: str, monkeypatch, tmp_path):
    engine_calls = count_calls(monkeypatch, embedded_engine)
    code, stdout, _ = invoke(
        ["eval", "--dataset", "cuad", "--limit", "2", "--json", "--report-dir", str(tmp_path / "r")]
    )
    assert code == 0
    summary = json.loads(stdout)
    assert (summary["evaluation_id"], summary["dataset"], summary["profile"]) == (1, "cuad", "embedded")
    assert summary["status"] == {"scored": 1, "failed": 0, "skipped": 1, "unreadable": 0}
    assert summary["reused_runs"] == 0
    # CENTRACK: 7 single-value labels, each counted exactly once; 2 labelled parties, each right or missing
    fields = summary["fields"]
    assert set(fields) == {"parties", "agreement_date", "effective_date", "expiration_date", "renewal",
                           "notice_period", "governing_law", "liability_cap"}  # fmt: skip
    for name, c in fields.items():
        if name != "parties":
            assert c["right"] + c["wrong"] + c["missing"] + c["spurious"] + c["absent_ok"] == 1, name
    assert fields["parties"]["right"] + fields["parties"]["missing"] == 2
    assert summary["excluded_labels"] == [
        {
            "document": "LIMEENERGYCO_09_09_1999-EX-10-DISTRIBUTOR AGREEMENT.PDF",
            "field": "agreement_date",
            "why": "CUAD answers 7/7/99, but its labelled text says '7th day of September, 1999'",
        },
        {
            "document": "LIMEENERGYCO_09_09_1999-EX-10-DISTRIBUTOR AGREEMENT.PDF",
            "field": "renewal",
            "why": "garbled answer (10 1 years)",
        },
    ]
    assert db_rows(eval_env, "SELECT status, run_status FROM evaluation_items ORDER BY id") == [
        ("scored", "ok"),
        ("skipped", "skipped"),
    ]
    check_scores_match_the_stored_run(eval_env, 1, "cuad")
    report = Path(summary["report"])
    text = report.read_text()
    assert text.startswith("# Evaluation 1: `cuad` with `embedded` (smollm2-135m-instruct)")
    assert (
        "- LIMEENERGYCO_09_09_1999-EX-10-DISTRIBUTOR AGREEMENT.PDF: skipped — too long for profile 'embedded'" in text
    )
    assert Path(summary["chart"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the same command again: the stored answer is reused, the figures are identical
    calls = len(engine_calls)
    code, stdout, _ = invoke(
        ["eval", "--dataset", "cuad", "--limit", "2", "--json", "--report-dir", str(tmp_path / "2")]
    )
    again = json.loads(stdout)
    assert code == 0 and len(engine_calls) == calls
    assert (again["evaluation_id"], again["reused_runs"]) == (2, 1)
    assert (again["totals"], again["fields"]) == (summary["totals"], summary["fields"])

    code, stdout, _ = invoke(["eval-show", "1", "--json"])
    shown = json.loads(stdout)
    assert code == 0 and (shown["evaluation_id"], shown["totals"]) == (1, summary["totals"])
    code, stdout, _ = invoke(["eval-list", "--json"])
    assert code == 0 and [json.loads(line)["id"] for line in stdout.splitlines()] == [2, 1]
    code, stdout, _ = invoke(["eval-compare", "1", "2", "--report-dir", str(tmp_path / "cmp")])
    assert code == 0 and "all fields" in stdout
    compare = (tmp_path / "cmp" / "compare.md").read_text()
    assert compare.startswith("# Comparison of evaluations 1, 2")
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    code, _, stderr = invoke(["eval-compare", "1", "9"])
    assert code != 0 and "no evaluation 9" in str(stderr or "") + str(
        CliRunner().invoke(cli.app, ["eval-compare", "9"]).exception
    )


def test_eval_papers_limit_1_skips_what_the_window_cannot_hold(cli_pool, eval_env: str, tmp_path) -> None:
    """The papers dataset through `eval`: its first paper is over the embedded window, so it is skipped and counted
    so, with no engine call. (A scored paper took 200 s of CI's 45 minutes on two cores; the CUAD tests here score
    through the engine, and tests/test_eval_scoring.py scores the paper fields.)"""
    code, stdout, _ = invoke(["eval", "--dataset", "papers", "--limit", "1", "--json", "--report-dir", str(tmp_path)])
    summary = json.loads(stdout)
    assert (summary["dataset"], summary["template"]) == ("papers", "paper")
    assert summary["status"] == {"scored": 0, "failed": 0, "skipped": 1, "unreadable": 0}
    assert db_rows(eval_env, "SELECT name, status FROM evaluation_items ORDER BY id") == [
        ("science-parse/bunescu-acl07.pdf", "skipped")
    ]
    assert code == 2, stdout  # nothing could be scored: as batch, exit 2


def test_eval_dry_run_with_the_qwen3_next_profile(eval_env: str, tmp_path: Path) -> None:
    """The same command with the 256K GPU profile, on a CUAD folder given by path (the CSV and two of its
    PDFs): the 60-page contract the embedded window skips fits (no engine here)."""
    folder = tmp_path / "cuad"
    folder.mkdir()
    shutil.copy(CUAD_DIR / "master_clauses.csv", folder)
    for pdf in (CUAD_DIR / "pdf").glob("*"):
        if pdf.name.startswith(("CENTRACK", "SigaTechnologies")):
            shutil.copy(pdf, folder / pdf.name)
    args = ["eval", "--dataset", str(folder), "--dry-run", "--json", "--no-tables"]  # tables: not in question
    code, stdout, _ = invoke([*args, "--profile", "qwen3-next"])
    assert code == 0
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert [(r["document"][:8], r["profile"], r["window"], r["verdict"]) for r in rows] == [
        ("CENTRACK", "qwen3-next", 262_144, "fits"),
        ("SigaTech", "qwen3-next", 262_144, "fits"),
    ]
    code, stdout, _ = invoke(args)  # the default profile here: the embedded model's 8,192 window
    assert [json.loads(line)["verdict"] for line in stdout.splitlines()] == ["fits", "too-long"]


def test_eval_with_the_tiny_qwen3_next_engine(cli_pool, tiny_engine, eval_env: str, monkeypatch, tmp_path) -> None:
    """The Qwen3-Next code path through `eval` (dummy weights: the answer is noise, the bookkeeping is not)."""
    engine_calls = count_calls(monkeypatch, tiny_engine)
    args = ["eval", "--dataset", "cuad", "--limit", "1", "--profile", "qwen3-next-tiny", "--report-dir", str(tmp_path)]
    code, stdout, _ = invoke([*args, "--json"])
    assert code in (0, 2)
    summary = json.loads(stdout)
    assert (summary["profile"], summary["documents"], len(engine_calls) >= 1) == ("qwen3-next-tiny", 1, True)
    [(status, run_status)] = db_rows(eval_env, "SELECT status, run_status FROM evaluation_items")
    assert (status, run_status) in {("scored", "ok"), ("scored", "partial")}
    if status == "failed":  # no valid answer: every label is missing or rightly absent, nothing right
        assert summary["totals"]["right"] == 0
        assert summary["totals"]["missing"] == 9  # 7 single-value labels + 2 parties
