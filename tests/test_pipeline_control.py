"""Control flow of the pipeline with a scripted engine: re-ask, truncation, storage, cache reuse."""

import json

from docanalyst.engines import EnginePool, FakeEngine
from docanalyst.pipeline import Analyzer, ExtractOptions
from docanalyst.profiles import get_profile

from conftest import SAMPLE_CONTRACT

GOOD = json.dumps(
    {
        "governing_law": {"value": "New York", "quote": "the laws of the State of New York", "page": 2},
        "parties": [
            {"value": "Northwind Analytics Ltd.", "role": "Supplier", "quote": "Northwind Analytics Ltd.", "page": 1}
        ],
    }
)
BAD_PAGE = json.dumps({"governing_law": {"value": "New York", "quote": "New York", "page": 3}})


def analyzer_with(settings, answers):
    engines = []

    def factory(profile, model_ref):
        engines.append(FakeEngine(profile, answers))
        return engines[-1]

    return Analyzer(settings, pool=EnginePool(settings, factory)), engines


def test_invalid_answer_is_reasked_once_then_stored_grounded(settings) -> None:
    analyzer, engines = analyzer_with(settings, [(BAD_PAGE, "stop"), (GOOD, "stop")])
    [outcome] = analyzer.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded"))
    assert outcome.status == "ok" and outcome.error is None and engines[0].calls == 2  # one call per attempt
    first, second = engines[0].requests
    assert first.temperature == 0.0 and first.seed == 0 and first.repetition_penalty == 1.1
    assert first.json_schema["$defs"]["Cited"]["properties"]["page"]["anyOf"][0]["maximum"] == 2  # type: ignore[index]
    # The re-ask shares the document prefix and carries the validation error.
    assert (
        second.prompt_token_ids[: len(first.prompt_token_ids) - 200]
        == first.prompt_token_ids[: len(first.prompt_token_ids) - 200]
    )
    assert len(second.prompt_token_ids) > len(first.prompt_token_ids)
    law = outcome.result["governing_law"]  # type: ignore[index]
    assert law["quote_status"] == "exact" and law["page"] == 2 and law["found_page"] == 2
    assert outcome.usage["completion_tokens"] == 14
    run, _doc, fields = analyzer.store.get_run(outcome.run_id)  # type: ignore[arg-type,misc]
    assert run.status == "ok" and run.attempts == 2 and run.template == "contract" and run.template_version == 2
    assert run.profile == "embedded" and run.model == "smollm2-135m-instruct"
    assert json.loads(run.sampling_json)["temperature"] == 0.0
    assert {f.path: f.quote_status for f in fields}["parties[0]"] == "exact"
    assert (run.quotes_total, run.quotes_found, run.grounding_rate) == (2, 2, 1.0)


def test_still_invalid_after_reask_is_flagged_not_lost(settings) -> None:
    analyzer, _ = analyzer_with(settings, [(BAD_PAGE, "stop"), ("{not json", "stop")])
    [outcome] = analyzer.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded"))
    assert outcome.status == "invalid"
    assert str(outcome.error).endswith(
        "the model's answer is not valid after one re-ask: not valid JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
    )
    run, _, fields = analyzer.store.get_run(outcome.run_id)  # type: ignore[arg-type,misc]
    assert run.status == "invalid" and run.result_json is None and run.raw_output == "{not json" and fields == []


def test_length_is_its_own_error_without_reask(settings) -> None:
    analyzer, engines = analyzer_with(settings, [('{"parties": [{"value": "aaaa', "length")])
    [outcome] = analyzer.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded"))
    assert outcome.status == "truncated" and len(engines[0].requests) == 1
    # max_tokens is the contract's worst case on the embedded profile (tests/test_budget.py counts it)
    assert "cut off at max_tokens=2222 (finish_reason=length); the JSON is incomplete" in str(outcome.error)


def test_a_cut_off_answer_keeps_its_complete_fields(settings) -> None:
    cut = (
        '{"parties":[{"value":"Northwind","quote":"Northwind","page":1,"role":"supplier"}],'
        '"agreement_date":{"value":"March 3, 2025","quote":"March 3, 2025","page":1},"effective_date":{"val'
    )
    analyzer, engines = analyzer_with(settings, [(cut, "length"), (cut, "length")])
    [outcome] = analyzer.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded"))
    assert outcome.status == "partial" and len(engines[0].requests) == 1 and outcome.error.exit_code == 8
    assert str(outcome.error).endswith(
        "partial result: the model's answer was cut off at max_tokens=2222 (finish_reason=length); kept 2 of 12 "
        "fields, missing: effective_date, expiration_date, term, renewal, notice_period, governing_law, "
        "termination_rights, liability_cap, payment_terms, key_obligations"
    )
    run, _, fields = analyzer.store.get_run(outcome.run_id)  # type: ignore[arg-type,misc]
    assert run.status == "partial" and run.missing == outcome.missing and len(run.missing) == 10
    assert [f.path for f in fields] == ["parties[0]", "agreement_date"] + [
        name for name in run.missing if name not in ("termination_rights", "key_obligations")
    ]
    [strict] = analyzer.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded", strict=True, force=True))
    assert strict.status == "partial" and strict.error.exit_code == 6 and str(strict.error).endswith("(--strict)")


def test_same_question_is_served_from_the_store_unless_forced(settings) -> None:
    analyzer, engines = analyzer_with(settings, [(GOOD, "stop"), (GOOD, "stop")])
    [first] = analyzer.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded"))
    [again] = analyzer.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded"))
    assert again.status == "cached" and again.run_id == first.run_id and again.result == first.result
    assert len(engines[0].requests) == 1
    [forced] = analyzer.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded", force=True))
    assert forced.status == "ok" and forced.run_id == first.run_id + 1  # type: ignore[operator]


def test_one_bad_file_does_not_sink_the_batch(settings, tmp_path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 garbage")
    analyzer, engines = analyzer_with(settings, [(GOOD, "stop")])
    bad, good = analyzer.extract([broken, SAMPLE_CONTRACT], ExtractOptions(profile="embedded"))
    assert bad.status == "error" and str(bad.error).endswith("cannot open: not a PDF, or damaged beyond repair")
    assert good.status == "ok" and len(engines) == 1


def test_strict_fails_a_run_with_an_invented_quote(settings) -> None:
    invented = json.dumps({"governing_law": {"value": "Texas", "quote": "the laws of the State of Texas", "page": 2}})
    analyzer, _ = analyzer_with(settings, [(invented, "stop"), (invented, "stop")])
    [lenient] = analyzer.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded"))
    assert lenient.status == "ok" and lenient.as_json()["grounding"] == {
        "quotes": 1, "found": 0, "on_cited_page": 0, "not_found": 1, "rate": 0.0, "too_short": 0, "unsupported": 0,
        "asserted": 1, "verified": 0, "verdict": "ungrounded",
    }  # fmt: skip
    [strict] = analyzer.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded", strict=True, force=True))
    assert strict.status == "ungrounded" and strict.error is not None and strict.error.exit_code == 6
    assert str(strict.error).endswith(
        "1 of 1 quotes are not evidence for their value; the run's evidence is ungrounded (--strict): "
        "governing_law (not_found)"
    )


def test_batch_analyses_identical_files_once(settings, tmp_path) -> None:
    import shutil

    from docanalyst.batch import run_batch

    copy = tmp_path / "copy-of-sample.pdf"
    shutil.copy(SAMPLE_CONTRACT, copy)
    analyzer, engines = analyzer_with(settings, [(GOOD, "stop")])
    first, second = run_batch(analyzer, [SAMPLE_CONTRACT, copy], ExtractOptions(profile="embedded"), workers=2)
    assert len(engines[0].requests) == 1
    assert first.status == "ok" and second.status == "cached" and second.run_id == first.run_id
    assert second.notes == [f"same content as {SAMPLE_CONTRACT}: analysed once (run {first.run_id})"]


def test_the_pool_starts_each_engine_once_and_is_closed_only_by_its_owner(settings) -> None:
    built: list[FakeEngine] = []

    def factory(profile, model_ref):
        built.append(FakeEngine(profile, [(GOOD, "stop")] * 2))
        return built[-1]

    pool = EnginePool(settings, factory)
    first = Analyzer(settings, pool=pool)
    [one] = first.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded"))
    first.close()  # an Analyzer never closes a pool it was given
    [two] = Analyzer(settings, pool=pool).extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded", force=True))
    assert (one.status, two.status, len(built), built[0].closed, built[0].calls) == ("ok", "ok", 1, False, 2)
    assert pool.loaded() == [("embedded", str(settings.models_dir / "smollm2-135m-instruct"))]
    pool.get(get_profile("qwen3-next-tiny"), "another-model")  # keep=1: the least recently used goes first
    assert built[0].closed and pool.loaded() == [("qwen3-next-tiny", "another-model")]
    pool.close()
    assert built[1].closed and pool.loaded() == []


def test_an_engine_that_cannot_start_fails_its_documents_and_stores_nothing(settings) -> None:
    def broken(profile, model_ref):
        raise RuntimeError("CUDA out of memory\n(a long trace)")

    analyzer = Analyzer(settings, pool=EnginePool(settings, broken))
    [outcome] = analyzer.extract([SAMPLE_CONTRACT], ExtractOptions(profile="embedded"))
    assert outcome.status == "error" and outcome.run_id is None and outcome.document is not None
    assert str(outcome.error) == "could not start the engine for profile 'embedded': CUDA out of memory"
    assert analyzer.store.list_runs() == []
