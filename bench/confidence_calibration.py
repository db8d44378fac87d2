"""How well each confidence aggregation ranks good values above bad ones, on a database of stored runs.

Two kinds of truth, reported separately:
- the labels: the evaluation's own ranked figures per aggregation (``aggregations`` in its summary: AUPR and
  precision at 80 % recall of right claims among all claims, CUAD-style);
- a proxy available for every value of every run: whether the value's text occurs in its document (after
  grounding's normalisation, word boundaries kept). A value copied from the document is not necessarily right,
  and a right value need not be verbatim, so this is weaker than labels, but it has many more values.

For each run with stored tokens, every non-null cited value is scored under each aggregation from the stored
tokens (confidence.field_confidences) and the proxy's AUPR is computed with the same CUAD-style code
(evaluation.scoring.aupr; the "labelled" count is the values found in the document).

    .venv/bin/python bench/confidence_calibration.py sqlite:////path/to/docanalyst.db [EVALUATION_ID]
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> None:
    from docanalyst.confidence import AGGREGATIONS, field_confidences, unpack
    from docanalyst.evaluation.scoring import aupr, precision_at_recall
    from docanalyst.grounding import find_word, normalise
    from docanalyst.pdf import load_pdf
    from docanalyst.schemas import iter_cited
    from docanalyst.store import Store

    store = Store(sys.argv[1])
    report: dict[str, Any] = {}
    if len(sys.argv) > 2:
        evaluation = store.get_evaluation(int(sys.argv[2]))
        assert evaluation is not None
        report["labels"] = evaluation[0].summary.get("aggregations")
    claims: dict[str, list[tuple[float, bool]]] = {how: [] for how in AGGREGATIONS}
    runs = 0
    for run, doc in store.list_runs(limit=10_000):
        tokens = unpack(run.token_logprobs_json)
        if tokens is None or run.result is None or run.id is None:
            continue
        runs += 1
        text = normalise(load_pdf(doc.path).text)
        scores = {how: field_confidences(run.raw_output or "", *tokens, how=how) for how in AGGREGATIONS}
        for path, cited in iter_cited(run.result):
            value = cited.get("value")
            if not isinstance(value, str) or not normalise(value) or path not in scores[AGGREGATIONS[0]]:
                continue
            found = find_word(text, normalise(value)) >= 0
            for how in AGGREGATIONS:
                claims[how].append((scores[how][path], found))
    values = len(claims[AGGREGATIONS[0]])
    found = sum(f for _, f in claims[AGGREGATIONS[0]])
    report["proxy"] = {
        "runs": runs,
        "values": values,
        "found_in_document": found,
        **{
            how: {
                "aupr": round(aupr(claims[how], found) or 0.0, 4),
                "precision_at_80_recall": round(precision_at_recall(claims[how], found) or 0.0, 4),
                "mean_confidence_found": _mean([c for c, f in claims[how] if f]),
                "mean_confidence_not_found": _mean([c for c, f in claims[how] if not f]),
            }
            for how in AGGREGATIONS
        },
    }
    print(json.dumps(report, indent=2))


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


if __name__ == "__main__":
    main()
