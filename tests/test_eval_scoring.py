"""Scoring and label loading, without an engine: exact counts for hand-made results and labels."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from docanalyst.errors import ConfigError
from docanalyst.evaluation.datasets import Expected, cuad_parties, load_cuad, load_custom, load_papers, resolve
from docanalyst.evaluation.fields import FIELD_SPECS
from docanalyst.evaluation.scoring import (
    Claim,
    Counts,
    aupr,
    by_field,
    pr_points,
    precision_at_recall,
    ranked,
    ranked_by_field,
    score_field,
    score_result,
    total,
)

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


# ---- ranked figures (CUAD's AUPR and precision at 80 % recall), by hand and against CUAD's own procedure -------
def test_ranked_figures_by_hand() -> None:
    claims = [(0.9, True), (0.8, False), (0.7, True), (0.6, False)]  # 3 labelled values, 2 found
    anchor, top, *points = pr_points(claims, 3)
    assert anchor == (0, 1) and top[0] == 0 and math.isnan(top[1])  # CUAD's: nothing is claimed at the top
    assert points == [(1 / 3, 1.0), (1 / 3, 0.5), (2 / 3, 2 / 3), (2 / 3, 0.5)]
    # interpolated: (0,1) (0,1) (1/3,1) (1/3,2/3) (2/3,2/3) (2/3,2/3); area 1/3 * 1 + 1/3 * 2/3 = 5/9
    assert aupr(claims, 3) == pytest.approx(5 / 9)
    assert precision_at_recall(claims, 3, 0.8) == 0.0  # 2 of 3 found at best: 80 % recall is never reached
    assert precision_at_recall(claims, 3, 0.6) == pytest.approx(2 / 3)
    assert precision_at_recall(claims, 3, 0.3) == 1.0


def test_tied_confidences_are_admitted_together() -> None:
    claims = [(0.9, True), (0.9, False), (0.5, True)]
    assert pr_points(claims, 2)[2:] == [(0.5, 0.5), (1.0, 2 / 3)]
    # interpolated: (0,1) (0,2/3) (1/2,2/3) (1,2/3): flat from recall 0, as in CUAD
    assert aupr(claims, 2) == pytest.approx(2 / 3)
    assert precision_at_recall(claims, 2) == pytest.approx(2 / 3)


def test_ranked_edges() -> None:
    assert aupr([(0.3, True), (0.2, True)], 2) == 1.0 and precision_at_recall([(0.3, True), (0.2, True)], 2) == 1.0
    assert aupr([(0.3, False)], 1) == 0.0 and precision_at_recall([(0.3, False)], 1) == 0.0
    assert aupr([], 0) is None and precision_at_recall([(0.5, False)], 0) is None
    assert aupr([], 2) == 0.0  # labels and no claim: nothing found at any threshold


def _cuad(claims: list[tuple[float, bool]], labelled: int) -> tuple[float, float]:
    """CUAD's evaluate.py (get_precisions_recalls, process_precisions, get_aupr, get_prec_at_recall) at the level
    of claims: a claim with probability > threshold is made; tp = right claims made, fp = the other claims made,
    fn = labels not found. Its grid of thresholds, its NaN precision where nothing is claimed."""
    import numpy as np

    precisions, recalls = [1.0], [0.0]
    for conf in [*np.arange(0.99, 0, -0.01), 0.001, 0]:
        made = [right for c, right in claims if c > conf]
        precisions.append(sum(made) / len(made) if made else float("nan"))
        recalls.append(sum(made) / labelled)
    best = precisions[::-1]
    for i in range(1, len(best)):
        best[i] = max(best[i - 1], best[i])
    processed = best[::-1]
    pairs = zip(recalls, recalls[1:], processed, processed[1:], strict=False)
    area = sum((r1 - r0) * (p0 + p1) / 2 for r0, r1, p0, p1 in pairs)  # sklearn.metrics.auc
    at80 = next((p for p, r in zip(processed, recalls, strict=True) if r >= 0.8), 0.0)
    return area, at80


def test_ranked_figures_equal_cuads_evaluate_py_on_its_grid() -> None:
    import random

    rng = random.Random(13)
    for _ in range(200):
        n = rng.randint(1, 12)
        # confidences between CUAD's grid points (x.xx5), so its grid sees every distinct one as we do
        claims = [(rng.randint(1, 98) / 100 + 0.005, rng.random() < 0.6) for _ in range(n)]
        labelled = sum(r for _, r in claims) + rng.randint(0, 3)
        if labelled == 0:
            continue
        area, at80 = _cuad(claims, labelled)
        assert aupr(claims, labelled) == pytest.approx(area, abs=1e-12)
        assert precision_at_recall(claims, labelled) == pytest.approx(at80, abs=1e-12)


def test_ranked_by_field_from_results_with_confidences() -> None:
    def given(value: str | None, confidence: float | None) -> dict[str, object]:
        return {**cited(value), "confidence": confidence}

    labels = {"governing_law": Expected(("Florida",)), "parties": Expected(("A", "B"))}
    one = {"governing_law": given("Florida", 0.9), "parties": [given("A Corp", 0.8), given("Zed", 0.95)]}
    two = {"governing_law": given("Texas", 0.4), "parties": [given("B", 0.7)]}
    scores = [*score_result(one, labels, CONTRACT), *score_result(two, labels, CONTRACT)]
    assert scores[1].claims == [Claim("A Corp", 0.8, True), Claim("Zed", 0.95, False)]
    fields = ranked_by_field(scores)
    # governing_law: 0.9 right, 0.4 wrong; 2 labels -> (0,1) (1/2,1) (1/2,1/2): area 1/2, 80 % never reached
    assert fields["governing_law"] == {"aupr": 0.5, "precision_at_80_recall": 0.0, "claims": 2,
                                       "claims_without_confidence": 0}  # fmt: skip
    # parties: 0.95 wrong, 0.8 right, 0.7 right; 4 labels -> (0,1) (0,0) (1/4,1/2) (1/2,2/3), interpolated
    # (0,1) (0,2/3) (1/4,2/3) (1/2,2/3): area 1/2 * 2/3 = 1/3
    assert fields["parties"]["aupr"] == round(1 / 3, 4) and fields["parties"]["precision_at_80_recall"] == 0.0
    pooled = ranked(scores)
    assert pooled["claims"] == 5 and pooled["claims_without_confidence"] == 0
    # a claim without a confidence (a run stored before confidences): no ranked figures rather than wrong ones
    old = score_result({"governing_law": cited("Florida")}, labels, CONTRACT)
    assert ranked(old) == {"aupr": None, "precision_at_80_recall": None, "claims": 1, "claims_without_confidence": 1}
