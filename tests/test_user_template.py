"""A user's YAML template (samples/templates/nda.yaml, like no built-in) through the real embedded engine: batch,
extract, ask with the template, eval with a labels file, and the exports.

One engine generation makes the NDA run (batch); extract, ask and eval then answer the same question from the
stored run, which is deterministic. What the model says is not asserted (greedy output differs across CPUs):
the assertions hold for any answer a bounded schema allows: the stored template name and hash, the schema the
engine was given, the field names, the statuses, the export columns and the eval's counts.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from docanalyst import exporting
from docanalyst.batch import run_batch
from docanalyst.budget import answer_schema
from docanalyst.evaluation.datasets import resolve
from docanalyst.evaluation.runner import evaluate
from docanalyst.pipeline import Analyzer, ExtractOptions
from docanalyst.profiles import get_profile
from docanalyst.prompting import load_template
from docanalyst.schemas import iter_cited, schema_hash
from docanalyst.statuses import RunStatus
from docanalyst.templates import load_file

from conftest import ROOT, SAMPLES

pytestmark = pytest.mark.engine

NDA_YAML = SAMPLES / "templates" / "nda.yaml"
NDA_PDF = SAMPLES / "harborpeak-quillon-nda.pdf"
LABELS = ROOT / "tests" / "data" / "nda"
# What an answer can end as when its reserve is the schema's worst case: never cut off without a salvage.
BOUNDED = {RunStatus.OK, RunStatus.PARTIAL, RunStatus.INVALID}


def _base(path: str) -> str:
    return path.split("[", 1)[0].split(".", 1)[0]


def test_an_nda_template_runs_through_batch_extract_ask_eval_and_export(
    settings, engine_pool, embedded_engine, monkeypatch
) -> None:
    nda = load_file(NDA_YAML)
    names = [f.name for f in nda.spec.fields]
    requests: list = []  # every request the engine was given, in order
    real = embedded_engine.generate

    def recorded(batch):  # type: ignore[no-untyped-def]
        requests.extend(batch)
        return real(batch)

    monkeypatch.setattr(embedded_engine, "generate", recorded)
    analyzer = Analyzer(settings, pool=engine_pool)
    options = ExtractOptions(profile="embedded", template=str(NDA_YAML))

    [made] = run_batch(analyzer, [NDA_PDF], options, workers=1)
    assert made.status in BOUNDED and made.run_id is not None, made.error
    run, _doc, fields = analyzer.store.get_run(made.run_id)  # type: ignore[misc]
    assert len(requests) == run.attempts  # the extraction, and its re-ask when the first answer was not valid
    profile = get_profile("embedded")
    assert requests[0].json_schema == answer_schema(load_template(str(NDA_YAML)), profile, 2)
    assert requests[0].json_schema["properties"]["exclusions"]["maxItems"] == 2  # 4 in the file, 2 on this profile
    assert (run.template, run.template_version, run.template_sha256) == ("nda", 1, nda.sha256)
    assert run.schema_hash == schema_hash(nda.result_model, profile.output_bounds)
    assert {_base(f.path) for f in fields} <= set(names)
    if made.status == RunStatus.OK:
        assert list(made.result) == names  # type: ignore[arg-type]
        assert [f.path for f in fields] == [p for p, _ in iter_cited(made.result)]

    reuse = replace_reuse(options, made.status)
    [again] = analyzer.extract([NDA_PDF], reuse)
    assert (again.status, again.run_id) == (RunStatus.CACHED, made.run_id)

    question, extraction = analyzer.ask(NDA_PDF, ["Who receives the confidential information?"], reuse,
                                        templates=[str(NDA_YAML)])  # fmt: skip
    assert question.template is not None and question.template.name == "ask" and question.status in BOUNDED
    asked = analyzer.store.get_run(question.run_id)[0]  # type: ignore[arg-type,index]
    assert len(requests) == run.attempts + asked.attempts  # the question only: the NDA answer came from the store
    assert extraction.template is not None and extraction.template.sha256 == nda.sha256
    assert (extraction.status, extraction.run_id) == (RunStatus.CACHED, made.run_id)

    dataset = resolve(str(LABELS), None, None, str(NDA_YAML))
    evaluated = evaluate(analyzer, dataset, options, workers=1)
    summary = evaluated.summary()
    assert (summary["dataset"], summary["template"], summary["documents"], evaluated.reused) == ("nda", "nda", 1, 1)
    scored = "scored" if made.status in (RunStatus.OK, RunStatus.PARTIAL) else "failed"
    assert summary["status"] == {"scored": int(scored == "scored"), "failed": int(scored == "failed"), "skipped": 0,
                                 "unreadable": 0}  # fmt: skip
    assert set(summary["fields"]) == set(names)  # all eight are labelled in tests/data/nda/labels.csv
    assert len(requests) == run.attempts + asked.attempts  # eval reused the stored run

    record = exporting.run_record(run, _doc, fields)
    assert (record["template"], record["template_sha256"]) == ("nda", nda.sha256)
    rows = list(csv.reader(io.StringIO(exporting.to_field_csv([record]))))
    assert rows[0] == [*exporting.RUN_COLUMNS, "field", *exporting.FIELD_COLUMNS[1:], *exporting.REVIEW_COLUMNS]
    assert [row[7] for row in rows[1:]] == ([f.path for f in fields] or [""])
    wide = next(csv.reader(io.StringIO(exporting.to_wide_csv([record]))))
    paths = [f.path for f in fields]
    assert wide == [*exporting.RUN_COLUMNS, "error",
                    *(c for p in paths for c in (p, f"{p}.confidence", f"{p}.page", f"{p}.quote_found",
                                                 f"{p}.reviewed"))]  # fmt: skip
    assert json.loads(exporting.to_json([record]))[0]["result"] == run.result


def replace_reuse(options: ExtractOptions, status: RunStatus) -> ExtractOptions:
    """`extract` reuses only valid runs; a flagged one (any answer may be) is reused the way `batch --resume` does."""
    from dataclasses import replace

    from docanalyst.statuses import FLAGGED_STATUSES

    return options if status == RunStatus.OK else replace(options, reuse_statuses=FLAGGED_STATUSES)
