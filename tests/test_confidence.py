"""Confidence on every value: the pure reader (spans, token offsets, aggregation, the filter rule) with hand-computed
figures, and its wiring through the pipeline (ok, re-ask, partial, cached) and the exports with a scripted engine
that returns token log-probabilities."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import pytest

from docanalyst import exporting
from docanalyst.confidence import aggregate, below, field_confidences, pack, token_offsets, unpack, value_spans
from docanalyst.engines import EnginePool, FakeEngine, GenerationResult
from docanalyst.pipeline import Analyzer, ExtractOptions

from conftest import SAMPLE_CONTRACT

LN = math.log

# Two cited values, compact as the engine writes them (no free whitespace).
TWO = '{"a":{"value":"x","quote":null,"page":null},"b":{"value":null,"quote":null,"page":null}}'
TWO_TOKENS = ['{"a":{"', "value", '":"', "x", '","', "quote", '":', "null", ',"', "page", '":', "null", '},"', "b",
              '":{"', "value", '":', "null", ',"', "quote", '":', "null", ',"', "page", '":', "null", "}}"]  # fmt: skip


def test_value_spans_are_the_literals_of_every_cited_value() -> None:
    text = '{"parties":[{"value":"Acme","quote":"q","page":1,"role":null},{"value":"Beta","quote":null,"page":2,' \
           '"role":"x"}],"term":{"value":null,"quote":null,"page":null}}'  # fmt: skip
    spans = value_spans(text)
    assert spans == {"parties[0]": (21, 27), "parties[1]": (71, 77), "term": (129, 133)}
    assert [text[s:e] for s, e in spans.values()] == ['"Acme"', '"Beta"', "null"]


def test_value_spans_read_whitespace_and_escapes() -> None:
    text = '{ "a" : { "value" : "say \\"hi\\"" , "quote" : null , "page" : null } }'
    assert value_spans(text) == {"a": (20, 32)}
    assert text[20:32] == '"say \\"hi\\""'


def test_a_truncated_answer_keeps_the_values_before_the_cut() -> None:
    whole = TWO
    cut_in_b = whole[: whole.index('"b":{"value":') + len('"b":{"value":nu')]
    assert value_spans(cut_in_b) == {"a": (14, 17)}
    cut_in_a = whole[: whole.index('"x"') + 2]  # the string "x is not closed
    assert value_spans(cut_in_a) == {}
    assert value_spans("") == {} and value_spans("not json") == {}


def test_token_offsets_follow_the_lengths_when_the_tokens_are_the_text() -> None:
    assert token_offsets('{"a":"bc"}', ['{"', "a", '":"', "bc", '"}']) == [(0, 2), (2, 3), (3, 6), (6, 8), (8, 10)]


def test_token_offsets_clamp_a_special_token_after_the_text() -> None:
    """The EOS token's text is not in the answer: it covers nothing."""
    offsets = token_offsets('{"a":1}', ['{"', "a", '":', "1", "}", "<|im_end|>"])
    assert offsets == [(0, 2), (2, 3), (3, 5), (5, 6), (6, 7), (7, 7)]


def test_token_offsets_realign_when_the_token_texts_differ_from_the_text() -> None:
    # A character split over two tokens that each decode to U+FFFD on their own (one more character than the text).
    text = '{"value":"café"}'
    tokens = ['{"', "value", '":"', "caf", "\ufffd", "\ufffd", '"}']
    offsets = token_offsets(text, tokens)
    assert offsets == [(0, 2), (2, 7), (7, 10), (10, 13), (13, 13), (13, 14), (14, 16)]
    # A leading space the token texts lost: the later tokens move onto the characters they match.
    text = '{"value":"Acme Corp"}'
    offsets = token_offsets(text, ['{"', "value", '":"', "Acme", "Corp", '"}'])
    assert offsets == [(0, 2), (2, 7), (7, 10), (10, 15), (15, 19), (19, 21)]
    assert text[15:19] == "Corp"


def test_field_confidences_by_hand() -> None:
    assert "".join(TWO_TOKENS) == TWO
    logprobs = [0.0] * len(TWO_TOKENS)
    logprobs[2], logprobs[3], logprobs[4] = LN(0.9), LN(0.5), LN(0.8)  # '":"', 'x', '","' cover "x"
    logprobs[17] = LN(0.7)  # b's null
    logprobs[16] = LN(0.1)  # '":' before b's null: it ends before the literal, so it does not count
    assert field_confidences(TWO, TWO_TOKENS, logprobs) == {"a": 0.5, "b": 0.7}
    mean = field_confidences(TWO, TWO_TOKENS, logprobs, how="mean")
    assert mean == {"a": round((0.9 * 0.5 * 0.8) ** (1 / 3), 6), "b": 0.7}
    assert mean["a"] == 0.711379


def test_field_confidences_of_a_truncated_answer_score_what_it_holds() -> None:
    cut = TWO[: TWO.index('"b":{"value":') + len('"b":{"value":nu')]
    tokens, at = [], 0
    for piece in TWO_TOKENS:  # the tokens of the cut text: the last one cut as the text is
        if at >= len(cut):
            break
        tokens.append(piece[: len(cut) - at])
        at += len(piece)
    assert "".join(tokens) == cut
    logprobs = [LN(0.25) if t == "x" else 0.0 for t in tokens]
    assert field_confidences(cut, tokens, logprobs) == {"a": 0.25}


def test_no_scores_without_log_probabilities() -> None:
    assert field_confidences(TWO, None, None) == {}
    assert field_confidences(TWO, TWO_TOKENS, [0.0] * 3) == {}  # not one per token: nothing is trusted


def test_aggregate() -> None:
    assert aggregate([]) is None and aggregate([float("nan")]) is None
    assert aggregate([LN(0.5), LN(0.2), 0.0]) == pytest.approx(0.2)
    assert aggregate([LN(0.5), LN(0.2)], "mean") == pytest.approx(math.sqrt(0.1))
    assert aggregate([float("-inf")]) == 0.0 and aggregate([0.0]) == 1.0


def test_below_is_the_min_confidence_rule() -> None:
    assert below(0.49, 0.5) and not below(0.5, 0.5) and not below(0.9, 0.5)
    assert not below(None, 0.5)  # a value without a score (stored before scores) is never hidden
    assert not below(0.1, None)


def test_pack_round_trip() -> None:
    stored = pack(["{", "}"], [-0.1234567, float("-inf")])
    assert unpack(stored) == (["{", "}"], [-0.123457, -1e9])
    assert pack(["{"], [0.0, 0.0]) is None and pack(None, None) is None and unpack(None) is None


# ---- through the pipeline, with a scripted engine that returns log-probabilities -----------------------------
GOOD = json.dumps(
    {
        "governing_law": {"value": "New York", "quote": "the laws of the State of New York", "page": 2},
        "parties": [
            {"value": "Northwind Analytics Ltd.", "role": "Supplier", "quote": "Northwind Analytics Ltd.", "page": 1}
        ],
    },
    separators=(",", ":"),
)
BAD_PAGE = json.dumps({"governing_law": {"value": "New York", "quote": "New York", "page": 3}}, separators=(",", ":"))
# The probability the scripted engine gives a token with this text (every other token: 1.0).
SURE = {"York": 0.3, "Northwind": 0.6, "3": 0.05, "9": 0.2}


class TokenEngine(FakeEngine):
    """FakeEngine with tokens: words, runs of spaces and single punctuation marks, plus an EOS token that is
    not in the text, each with the probability ``SURE`` gives it."""

    def generate(self, requests):  # type: ignore[no-untyped-def]
        results = super().generate(requests)
        return [self._tokens(r) for r in results]

    @staticmethod
    def _tokens(result: GenerationResult) -> GenerationResult:
        texts = (*re.findall(r"\w+|\s+|[^\w\s]", result.text), "<|im_end|>")
        logprobs = tuple(LN(SURE.get(t, 1.0)) for t in texts)
        return replace(result, token_texts=texts, token_logprobs=logprobs, completion_tokens=len(texts))


def analyzer_with(settings, answers):  # type: ignore[no-untyped-def]
    engines: list[TokenEngine] = []

    def factory(profile, model_ref):  # type: ignore[no-untyped-def]
        engines.append(TokenEngine(profile, answers))
        return engines[-1]

    return Analyzer(settings, pool=EnginePool(settings, factory)), engines


def test_every_value_of_a_reasked_run_is_scored_from_the_last_answer_and_stored(settings) -> None:
    analyzer, _ = analyzer_with(settings, [(BAD_PAGE, "stop"), (GOOD, "stop")])
    [outcome] = analyzer.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded"))
    assert outcome.status == "ok"
    # the fields the scripted answer leaves out hold the template's defaults: no value the model wrote, no score
    expected = {"governing_law": 0.3, "parties[0]": 0.6, **{p: None for p in _nulls(outcome.result)}}
    assert {f.path: f.confidence for f in outcome.fields} == expected
    assert outcome.result["governing_law"]["confidence"] == 0.3  # type: ignore[index]
    run, _doc, rows = analyzer.store.get_run(outcome.run_id)  # type: ignore[arg-type,misc]
    assert {f.path: f.confidence for f in rows} == expected
    tokens, logprobs = unpack(run.token_logprobs_json)  # type: ignore[misc]
    assert "".join(tokens) == GOOD + "<|im_end|>" and len(logprobs) == len(tokens)

    # The same question again: the stored run answers, with the stored confidences.
    [cached] = analyzer.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded"))
    assert cached.status == "cached" and cached.run_id == outcome.run_id
    assert {f.path: f.confidence for f in cached.fields} == expected
    assert cached.result["parties"][0]["confidence"] == 0.6  # type: ignore[index]

    # Exports: the confidence column, and --min-confidence's rule.
    record = exporting.run_record(run, _doc, rows, min_confidence=0.5)
    assert record["hidden"] == ["governing_law"] and record["min_confidence"] == 0.5
    assert [f["path"] for f in record["fields"]] == [p for p in expected if p != "governing_law"]
    full = exporting.run_record(run, _doc, rows)
    assert "hidden" not in full and full["fields"][0]["confidence"] == expected[full["fields"][0]["path"]]
    csv_rows = exporting.to_field_csv([full]).splitlines()
    assert csv_rows[0].split(",")[7:10] == ["field", "value", "confidence"]
    assert sum(",New York,0.3," in row for row in csv_rows) == 1
    wide = exporting.to_wide_csv([record]).splitlines()
    assert "governing_law.confidence" not in wide[0] and "parties[0].confidence" in wide[0]


def test_a_partial_answer_scores_the_fields_it_keeps(settings) -> None:
    cut = GOOD[: GOOD.index('"parties"') + len('"parties":[{"value":"North')]
    analyzer, _ = analyzer_with(settings, [(cut, "length")])
    [outcome] = analyzer.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded"))
    assert outcome.status == "partial" and outcome.missing[0] == "parties"
    scores = {f.path: f.confidence for f in outcome.fields}
    assert scores["governing_law"] == 0.3
    # fields the answer never reached hold the template's defaults: the model gave no value, so no score
    assert all(score is None for path, score in scores.items() if path != "governing_law")


def _nulls(result):  # type: ignore[no-untyped-def]
    from docanalyst.schemas import iter_cited

    return [p for p, cited in iter_cited(result) if p not in ("governing_law", "parties[0]")]


def test_runs_stored_before_confidences_read_back_with_none(tmp_path) -> None:
    """A database at revision 0004 with one run: after migration 0005 its values have no confidence (NULL, never a
    made-up number), ``--min-confidence`` hides none of them, and the CSV cell is empty."""
    import sqlite3
    from pathlib import Path

    from alembic import command
    from alembic.config import Config

    from docanalyst import database
    from docanalyst.store import Store

    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(database.__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "0004")
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute("INSERT INTO documents VALUES ('ab', 'old.pdf', NULL, 1, 10, NULL, '2026-12-01 00:00:00')")
        db.execute(
            "INSERT INTO runs (id, document_sha256, template, template_version, template_sha256, schema_hash, profile,"
            " model, sampling_json, status, attempts, timings_json, result_json, docanalyst_version, created_at)"
            " VALUES (1, 'ab', 'contract', 2, 't', 's', 'embedded', 'm', '{}', 'ok', 1, '{}', '{}', '0.1',"
            " '2026-12-01 00:00:00')"
        )
        db.execute(
            "INSERT INTO fields (run_id, path, value, quote_found, quote_status, page_match) "
            "VALUES (1, 'governing_law', 'New York', 0, 'no_quote', 0)"
        )
    store = Store(url)  # migrates to the newest revision
    run, doc, rows = store.get_run(1)  # type: ignore[misc]
    assert [(f.path, f.confidence) for f in rows] == [("governing_law", None)]
    assert run.token_logprobs_json is None
    record = exporting.run_record(run, doc, rows, min_confidence=0.99)
    assert record["hidden"] == [] and record["fields"][0]["confidence"] is None
    assert exporting.to_field_csv([record]).splitlines()[1].endswith(",governing_law,New York,,,,False,no_quote,,,,,,")


def test_an_evaluation_ranks_claims_by_confidence_under_each_aggregation(settings, tmp_path) -> None:
    """Three claims: parties[0] right (min 0.6, mean 0.6^(1/8)), governing_law right (min 0.3, mean 0.3^(1/5)),
    effective_date wrong (min 0.2, mean 0.2^(1/8) = 0.818 > 0.786); four labelled values. ``min`` ranks both right
    claims first: points (1/4, 1) (1/2, 1) (1/2, 2/3), AUPR 1/2. ``mean`` puts the wrong one second: (1/4, 1)
    (1/4, 1/2) (1/2, 2/3), interpolated 1, 2/3, 2/3: AUPR 1/4 + 1/4 * 2/3 = 0.4167. 80 % recall is never reached."""
    from docanalyst.evaluation.datasets import load_custom
    from docanalyst.evaluation.runner import evaluate

    answer = json.loads(GOOD)
    answer["effective_date"] = {"value": "March 9, 2025", "quote": None, "page": None}
    folder = tmp_path / "labelled"
    folder.mkdir()
    (folder / "a.pdf").write_bytes(SAMPLE_CONTRACT.read_bytes())
    (folder / "labels.csv").write_text(
        "file,parties,governing_law,effective_date\na.pdf,Northwind Analytics Ltd.;Bluefin Logistics Inc.,New York,"
        "2025-03-03\n"
    )
    analyzer, _ = analyzer_with(settings, [(json.dumps(answer, separators=(",", ":")), "stop")])
    result = evaluate(analyzer, load_custom(folder, None, "contract"), ExtractOptions(profile="embedded"))
    summary = result.summary()
    assert (summary["totals"]["right"], summary["totals"]["wrong"], summary["totals"]["missing"]) == (2, 1, 1)
    assert summary["aggregation"] == "min"
    assert summary["totals"]["aupr"] == 0.5 and summary["totals"]["precision_at_80_recall"] == 0.0
    by_how = summary["aggregations"]
    assert (by_how["min"]["aupr"], by_how["mean"]["aupr"]) == (0.5, 0.4167)
    assert by_how["mean"]["fields"]["effective_date"] == {"aupr": 0.0, "precision_at_80_recall": 0.0, "claims": 1,
                                                          "claims_without_confidence": 0}  # fmt: skip
    assert summary["fields"]["governing_law"]["aupr"] == 1.0
    stored = analyzer.store.get_evaluation(result.evaluation_id)  # type: ignore[arg-type]
    assert stored is not None and stored[0].summary["aggregations"]["mean"]["aupr"] == 0.4167
