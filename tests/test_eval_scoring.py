"""Scoring and label loading, without an engine: exact counts for hand-made results and labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docanalyst.errors import ConfigError
from docanalyst.evaluation.datasets import Expected, cuad_parties, load_cuad, load_custom, load_papers, resolve
from docanalyst.evaluation.fields import FIELD_SPECS
from docanalyst.evaluation.scoring import Counts, by_field, score_field, score_result, total

from conftest import CORPUS, SAMPLE_CONTRACT

CONTRACT = FIELD_SPECS["contract"]


def cited(value: str | None) -> dict[str, object]:
    return {"value": value, "quote": None, "page": None}


def test_scalar_field_outcomes() -> None:
    spec = CONTRACT["governing_law"]
    assert score_field(spec, Expected(("Florida",)), ["the laws of Florida"]).counts == Counts(right=1)
    assert score_field(spec, Expected(("Florida",)), ["Texas"]).counts == Counts(wrong=1)
    assert score_field(spec, Expected(("Florida",)), []).counts == Counts(missing=1)
    assert score_field(spec, Expected(()), ["Texas"]).counts == Counts(spurious=1)
    assert score_field(spec, Expected(()), []).counts == Counts(absent_ok=1)


def test_presence_field_is_scored_on_presence() -> None:
    spec = CONTRACT["liability_cap"]
    assert score_field(spec, Expected(("yes",)), ["capped at fees paid"]).counts == Counts(right=1)
    assert score_field(spec, Expected(()), ["capped at fees paid"]).counts == Counts(spurious=1)
    assert score_field(spec, Expected(("yes",)), []).counts == Counts(missing=1)


def test_list_field_matches_one_to_one_and_counts_repeats_once() -> None:
    spec = CONTRACT["parties"]
    labels = cuad_parties('Centrack International Inc. ("Customer"); i-on interactive Inc. ("i-on")')
    assert labels == Expected(("Centrack International Inc", "i-on interactive Inc"), ("Customer", "i-on"))
    predicted = ["CENTRACK INTERNATIONAL, INC.", "Centrack International Inc", "Acme Hosting LLC"]
    assert score_field(spec, labels, predicted).counts == Counts(right=1, missing=1, spurious=1)
    # a defined term stands for the party it defines
    assert score_field(spec, labels, ["Centrack International", "i-on"]).counts == Counts(right=2)


def test_cuad_parties_drop_collective_entries() -> None:
    answer = (
        'Energy XXI Gulf Coast, Inc. ("Shipper"); Energy XXI USA, Inc. ("Transporter");Shipper and Transporter '
        "(individually as a “Party” or collectively as the “Parties”)"
    )
    assert cuad_parties(answer).values == ("Energy XXI Gulf Coast, Inc", "Energy XXI USA, Inc")


def test_a_failed_run_leaves_every_label_missing_and_metrics_follow() -> None:
    labels = {"governing_law": Expected(("Florida",)), "renewal": Expected(()), "parties": Expected(("A", "B"))}
    assert total(score_result(None, labels, CONTRACT)) == Counts(missing=3, absent_ok=1)
    result = {"governing_law": cited("Florida"), "renewal": cited("N/A"), "parties": [cited("A Corp"), cited("Zed")]}
    scores = score_result(result, labels, CONTRACT)
    counts = total(scores)
    assert counts == Counts(right=2, missing=1, spurious=1, absent_ok=1)
    assert (counts.precision, counts.recall) == (2 / 3, 2 / 3)
    assert by_field(scores)["parties"] == Counts(right=1, missing=1, spurious=1)
    assert Counts().precision is None and Counts(absent_ok=3).f1 is None


def test_cuad_labels_and_their_known_faults() -> None:
    data = load_cuad(CORPUS / "contracts" / "cuad")
    assert (data.name, data.template, len(data.cases)) == ("cuad", "contract", 12)
    assert data.cases[0].name.startswith("CENTRACK")  # smallest first
    by_name = {c.name.split("_")[0]: c for c in data.cases}
    lime = by_name["LIMEENERGYCO"]
    assert set(lime.excluded) == {"agreement_date", "renewal"}
    assert "7th day of September, 1999" in lime.excluded["agreement_date"]
    liquid = by_name["LiquidmetalTechnologiesInc"]
    assert set(liquid.excluded) == {"agreement_date", "effective_date", "expiration_date"}
    centrack = by_name["CENTRACKINTERNATIONALINC"]
    assert centrack.labels["notice_period"] == Expected(("15 days",))  # the "Renewal- Answer" column
    assert centrack.labels["liability_cap"] == Expected(("yes",))
    assert "12 of the 510 labelled contracts" in data.notes[-1]


def test_papers_labels() -> None:
    data = load_papers(CORPUS / "papers" / "ground_truth_papers.json")
    assert len(data.cases) == 10
    notes = {c.name: c.note for c in data.cases}
    assert notes["misc/tracemonkey.pdf"] == "transcribed, not independent"
    p07 = next(c for c in data.cases if c.name == "science-parse/P07-1088.pdf")
    assert p07.excluded == {"abstract": "not labelled in the ground truth"}
    assert p07.labels["authors"].values == ("Doug Downey", "StefanSchoenmackers", "Oren Etzioni")


def test_custom_dataset_csv_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(SAMPLE_CONTRACT.read_bytes())
    (tmp_path / "labels.csv").write_text(
        "file,parties,governing_law,renewal,notice_period,colour\na.pdf,Northwind Ltd;Bluefin Inc,Delaware,,?,blue\n"
    )
    data = load_custom(tmp_path, None, "contract")
    case = data.cases[0]
    assert case.labels == {
        "parties": Expected(("Northwind Ltd", "Bluefin Inc")),
        "governing_law": Expected(("Delaware",)),
        "renewal": Expected(()),  # empty: the document has none
    }  # "?" is not labelled; "colour" is not a field
    assert "colour" in data.notes[0]
    (tmp_path / "labels.csv").unlink()
    (tmp_path / "labels.jsonl").write_text(json.dumps({"file": "a.pdf", "title": "T", "authors": ["X", "Y"]}) + "\n")
    paper = resolve(str(tmp_path), None, None, "paper")
    assert paper.cases[0].labels == {"title": Expected(("T",)), "authors": Expected(("X", "Y"))}


def test_dataset_errors_are_plain(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no labels file"):
        load_custom(tmp_path, None, "contract")
    (tmp_path / "labels.csv").write_text("file,governing_law\nmissing.pdf,Texas\n")
    with pytest.raises(ConfigError, match=r"row 1: missing\.pdf does not exist"):
        load_custom(tmp_path, None, "contract")
    with pytest.raises(ConfigError, match="needs the shared corpus"):
        resolve("cuad", None)
    with pytest.raises(ConfigError, match="no such dataset"):
        resolve(str(tmp_path / "nope"), None)
