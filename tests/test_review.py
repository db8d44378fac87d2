"""Corrections with an audit trail (reviewing.py, revisions.py, `docanalyst review`): the model's answer is kept,
each review is a new revision with who and when, a reviewer's quote is checked against the document, exports
carry both, and the reviewed runs become an eval dataset. The run is made by a scripted engine: what is under
test is the review, not the model (tests/test_ui_browser.py reviews a real engine's run in the browser)."""

from __future__ import annotations

import csv
import io
import json

from test_cli import run_main
from typer.testing import CliRunner

from docanalyst import cli
from docanalyst.engines import EnginePool, FakeEngine
from docanalyst.pipeline import Analyzer, ExtractOptions
from docanalyst.reviewing import corrections_dataset
from docanalyst.store import Store

from conftest import SAMPLE_CONTRACT

ANSWER = json.dumps(
    {
        "governing_law": {"value": "New Jersey", "quote": "the laws of the State of New York", "page": 2},
        "parties": [
            {"value": "Northwind Analytics Ltd.", "role": "Supplier", "quote": "Northwind Analytics Ltd.", "page": 1},
            {"value": "Acme Inc.", "role": "Customer", "quote": "Bluefin Logistics Inc.", "page": 1},
        ],
        "term": {"value": "two (2) years", "quote": "continues for two (2) years", "page": 1},
    }
)


def stored_run(settings) -> int:
    pool = EnginePool(settings, lambda profile, ref: FakeEngine(profile, [(ANSWER, "stop")]))
    [outcome] = Analyzer(settings, pool=pool).extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded"))
    assert outcome.status == "ok" and outcome.run_id is not None
    return outcome.run_id


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli.app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_review_from_the_command_line_keeps_the_original_and_checks_the_quote(settings, db_env) -> None:
    run_id = stored_run(settings)
    # The model's governing law is unsupported by its own quote; the reviewer corrects it, with evidence.
    code, stdout, stderr = invoke(
        "review", str(run_id), "--set", "governing_law=New York", "--quote", "governed by the laws of the State of "
        "New York", "--page", "2", "--by", "alice", "--note", "the quote says New York", "--json",
    )  # fmt: skip
    assert code == 0, stderr
    by_path = {item["path"]: item for item in json.loads(stdout)["fields"]}
    law = by_path["governing_law"]
    assert law["value"] == "New Jersey"  # the model's answer, kept
    review = law["review"]
    assert (review["action"], review["value"], review["reviewer"], review["note"]) == (
        "edited", "New York", "alice", "the quote says New York"
    )  # fmt: skip
    assert (review["quote_status"], review["found"], review["page"]) == ("exact", True, 2)
    assert by_path["term"]["review"] is None  # nobody looked at it

    # Reject one party, accept the other; a second edit of the same field is a new revision, the newest counts.
    assert invoke("review", str(run_id), "--reject", "parties[1]", "--accept", "parties[0]", "--by", "bob")[0] == 0
    code, stdout, _ = invoke("review", str(run_id), "--set", "governing_law=State of New York", "--by", "carol",
                             "--json")  # fmt: skip
    by_path = {item["path"]: item for item in json.loads(stdout)["fields"]}
    assert by_path["governing_law"]["review"]["value"] == "State of New York"
    assert by_path["governing_law"]["review"]["revisions"] == 2 and by_path["governing_law"]["review"]["quote"] is None
    assert by_path["parties[1]"]["review"]["action"] == "rejected" and by_path["parties[1]"]["review"]["value"] is None
    accepted = by_path["parties[0]"]["review"]
    assert accepted["action"] == "accepted" and accepted["value"] == "Northwind Analytics Ltd."
    assert accepted["quote_status"] == "exact"  # the model's evidence, as grounded

    # Exports carry the model's value and the review.
    code, stdout, _ = invoke("export", "--format", "json", str(run_id))
    [record] = json.loads(stdout)
    fields = {f["path"]: f for f in record["fields"]}
    assert fields["governing_law"]["value"] == "New Jersey"
    assert fields["governing_law"]["review"]["value"] == "State of New York"
    assert record["result"]["governing_law"]["value"] == "New Jersey"
    code, stdout, _ = invoke("export", "--format", "csv", str(run_id))
    rows = {r["field"]: r for r in csv.DictReader(io.StringIO(stdout))}
    assert (rows["governing_law"]["value"], rows["governing_law"]["reviewed_value"]) == (
        "New Jersey",
        "State of New York",
    )
    assert rows["parties[1]"]["review_action"] == "rejected" and rows["term"]["review_action"] == ""
    assert rows["governing_law"]["reviewer"] == "carol"
    code, stdout, _ = invoke("export", "--format", "wide", str(run_id))
    [wide] = list(csv.DictReader(io.StringIO(stdout)))
    assert wide["governing_law"] == "New Jersey" and wide["governing_law.reviewed"] == "State of New York"

    # The reviews as labels: touched fields only, lists after review.
    data = corrections_dataset(Store(settings.db_url), None)
    [case] = data.cases
    assert data.template == "contract" and case.pdf == SAMPLE_CONTRACT
    assert {name: e.values for name, e in case.labels.items()} == {
        "governing_law": ("State of New York",),
        "parties": ("Northwind Analytics Ltd.",),
    }
    code, stdout, stderr = invoke("eval", "--dataset", "corrections", "--dry-run", "--json")
    assert code == 0, stderr


def test_review_mistakes_are_one_line(settings, db_env, monkeypatch, capsys) -> None:
    """Through the console script's own edge (``main``): one plain line and the exit code, never a traceback."""
    run_id = stored_run(settings)

    def main(*args: str) -> tuple[int, str]:
        code, _stdout, stderr = run_main(monkeypatch, capsys, *args)
        assert "Traceback" not in stderr
        return code, stderr

    code, stderr = main("review", str(run_id), "--set", "govering_law=Texas", "--by", "alice")
    assert code == 2 and "has no field 'govering_law'; its fields: " in stderr and "governing_law" in stderr
    code, stderr = main("review", str(run_id), "--set", "governing_law", "--by", "alice")
    assert code == 2 and "--set takes FIELD=VALUE, got 'governing_law'" in stderr
    code, stderr = main("review", str(run_id), "--reject", "term", "--quote", "two years")
    assert code == 2 and "--quote and --page go with exactly one --set or --accept" in stderr
    code, stderr = main("review", "999", "--accept", "term")
    assert code == 1 and "no run with id 999" in stderr
    code, stderr = main("eval", "--dataset", "corrections", "--template", "paper", "--dry-run")
    assert code == 2 and "no reviewed runs of the 'paper' template" in stderr
    # A quote that is not in the document is stored as what it is: not found.
    code, stdout, _ = invoke("review", str(run_id), "--set", "term=3 years", "--quote", "for three (3) years",
                             "--by", "alice", "--json")  # fmt: skip
    term = {i["path"]: i for i in json.loads(stdout)["fields"]}["term"]["review"]
    assert code == 0 and term["quote_status"] == "not_found" and term["found"] is False
