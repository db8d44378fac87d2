"""Field groups (field_groups.py): a template's fields decoded as several requests on one cached document prefix.

The split, the merge, the statuses and the usage are control flow: tested with the scripted engine. One test drives
the tiny Qwen3-Next engine (the real hybrid cache on the CPU) to prove that every group finds the document in the
prefix cache and that one run is stored with every group's usage.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from docanalyst.engines import EnginePool, FakeEngine
from docanalyst.field_groups import balanced, plan_groups
from docanalyst.pipeline import Analyzer, ExtractOptions
from docanalyst.profiles import get_profile
from docanalyst.prompting import load_template
from docanalyst.statuses import RunStatus
from docanalyst.tokenization import model_tokenizer

from conftest import SAMPLE_CONTRACT

# The contract's fields in two balanced groups on the embedded profile (by their worst-case answer tokens).
FIRST = ("parties", "agreement_date", "effective_date", "expiration_date", "term", "renewal")
SECOND = ("notice_period", "governing_law", "termination_rights", "liability_cap", "payment_terms", "key_obligations")
PARTIES = {"parties": [{"value": "Northwind Analytics Ltd.", "role": "Supplier", "quote": "Northwind Analytics Ltd.",
                        "page": 1}]}  # fmt: skip
LAW = {"governing_law": {"value": "New York", "quote": "the laws of the State of New York", "page": 2}}
PREFILL = ("x", "length")  # the one-token prefill request's answer (never read)


@pytest.fixture(scope="module")
def contract():
    """The sample contract read once, in this process (the reader process is tested elsewhere)."""
    from docanalyst.pdf import load_pdf

    return load_pdf(SAMPLE_CONTRACT)


def extract(analyzer, document, options):
    """``Analyzer.extract`` of an already read document: plan, admit, generate, finish."""
    prepared = analyzer.prepare_document(str(SAMPLE_CONTRACT), document, options, 0.0)
    return analyzer.run([analyzer.admit(prepared, options)], options)


def analyzer_with(settings, answers):
    engines: list[FakeEngine] = []

    def factory(profile, model_ref):
        engines.append(FakeEngine(profile, answers))
        return engines[-1]

    return Analyzer(settings, pool=EnginePool(settings, factory)), engines


@pytest.fixture(scope="module")
def smollm(base_settings):
    return model_tokenizer(base_settings.models_dir / "smollm2-135m-instruct")


def test_balanced_split_is_exact_and_prefers_the_declared_edges() -> None:
    costs = {"a": 5, "b": 1, "c": 1, "d": 1, "e": 5}
    assert balanced("abcde", costs, 3) == (("a",), ("b", "c", "d"), ("e",))
    costs = {"a": 2, "b": 1, "c": 1, "d": 1, "e": 2}  # several splits have a largest group of 3
    assert balanced("abcde", costs, 3, frozenset({2, 3})) == (("a", "b"), ("c",), ("d", "e"))
    assert balanced("ab", {"a": 1, "b": 1}, 8) == (("a",), ("b",))  # never more groups than fields


def test_the_split_follows_the_option_then_the_profile_then_the_template(smollm) -> None:
    contract, embedded = load_template("contract"), get_profile("embedded")
    assert plan_groups(contract, embedded, smollm, None) == ()  # the CPU profile's default: one request
    assert plan_groups(contract, embedded, smollm, 1) == ()
    assert plan_groups(contract, embedded, smollm, 2) == (FIRST, SECOND)
    declared = replace(embedded, field_groups=None)  # the GPU profiles' default: the template's declared groups
    assert plan_groups(contract, declared, smollm, None) == contract.spec.groups  # type: ignore[union-attr]
    assert plan_groups(load_template("generic"), declared, smollm, None) == ()  # one declared group
    assert plan_groups(load_template("ask"), declared, smollm, 4) == ()  # a question is one answer
    four = plan_groups(contract, embedded, smollm, 4)
    assert len(four) == 4 and sum(four, ()) == FIRST + SECOND  # every field once, in declared order


def test_groups_share_the_prefix_and_merge_into_one_stored_run(settings, contract) -> None:
    answers = [PREFILL, (json.dumps(PARTIES), "stop"), (json.dumps(LAW), "stop")]
    analyzer, engines = analyzer_with(settings, answers)
    options = ExtractOptions(profile="embedded", field_groups=2)
    [outcome] = extract(analyzer, contract, options)
    assert outcome.status == RunStatus.OK and outcome.error is None
    prefill, first, second = engines[0].requests
    assert engines[0].calls == 2  # the prefill, then both groups in one batch
    assert prefill.max_tokens == 1 and prefill.json_schema is None
    prefix = list(prefill.prompt_token_ids)
    assert list(first.prompt_token_ids[: len(prefix)]) == prefix == list(second.prompt_token_ids[: len(prefix)])
    assert list(first.json_schema["properties"]) == list(FIRST)  # type: ignore[index]
    assert list(second.json_schema["properties"]) == list(SECOND)  # type: ignore[index]
    assert outcome.result["parties"][0]["quote_status"] == "exact"  # type: ignore[index]
    assert outcome.result["governing_law"]["found_page"] == 2  # type: ignore[index]
    run, _doc, _fields = analyzer.store.get_run(outcome.run_id)  # type: ignore[arg-type,misc]
    assert run.status == "ok" and (run.quotes_total, run.quotes_found) == (2, 2)
    groups = json.loads(run.sampling_json)["field_groups"]
    assert groups["prefill"] == {"prompt_tokens": len(prefix), "cached_tokens": 0, "completion_tokens": 7}
    assert [g["fields"] for g in groups["groups"]] == [list(FIRST), list(SECOND)]
    assert [g["prompt_tokens"] for g in groups["groups"]] == [len(first.prompt_token_ids), len(second.prompt_token_ids)]
    assert [(g["status"], g["completion_tokens"]) for g in groups["groups"]] == [("ok", 7), ("ok", 7)]
    assert run.completion_tokens == 21 == outcome.usage["completion_tokens"]  # prefill + both groups
    assert run.prompt_tokens == len(prefix) + len(first.prompt_token_ids) + len(second.prompt_token_ids)
    assert outcome.as_json()["field_groups"] == groups
    # the grouping is part of the run's key: two groups are served from the store, one request is not
    [again] = extract(analyzer, contract, options)
    assert again.status == RunStatus.CACHED and again.field_groups == groups and engines[0].calls == 2
    [single] = extract(analyzer, contract, replace(options, field_groups=1))
    assert single.status == RunStatus.FAILED  # it asked the engine (no answer scripted): not the grouped run
    assert "no scripted answer left" in str(single.error) and engines[0].calls == 3


def test_a_group_cut_off_keeps_the_others_as_a_partial_run(settings, contract) -> None:
    answers = [PREFILL, (json.dumps(PARTIES), "stop"), ('{"notice_period":{"val', "length")]
    analyzer, _engines = analyzer_with(settings, answers)
    [outcome] = extract(analyzer, contract, ExtractOptions(profile="embedded", field_groups=2))
    assert outcome.status == RunStatus.PARTIAL and outcome.error.exit_code == 8  # type: ignore[union-attr]
    assert "field group 2 of 2 (notice_period, governing_law, " in str(outcome.error)
    assert "cut off at max_tokens=" in str(outcome.error) and "kept 6 of 12 fields" in str(outcome.error)
    assert outcome.missing == list(SECOND)
    assert outcome.result["parties"][0]["value"] == "Northwind Analytics Ltd."  # type: ignore[index]
    run, _doc, _fields = analyzer.store.get_run(outcome.run_id)  # type: ignore[arg-type,misc]
    statuses = [g["status"] for g in json.loads(run.sampling_json)["field_groups"]["groups"]]
    assert run.status == "partial" and statuses == ["ok", "truncated"] and run.missing == list(SECOND)


def test_an_invalid_group_alone_is_asked_again(settings, contract) -> None:
    bad_page = json.dumps({"governing_law": {"value": "New York", "quote": "New York", "page": 3}})
    answers = [PREFILL, (json.dumps(PARTIES), "stop"), (bad_page, "stop"), (json.dumps(LAW), "stop")]
    analyzer, engines = analyzer_with(settings, answers)
    [outcome] = extract(analyzer, contract, ExtractOptions(profile="embedded", field_groups=2))
    assert outcome.status == RunStatus.OK and engines[0].calls == 3
    reask = engines[0].requests[-1]
    assert list(reask.json_schema["properties"]) == list(SECOND)  # type: ignore[index]
    groups = outcome.field_groups["groups"]  # type: ignore[index]
    assert [g["attempts"] for g in groups] == [1, 2] and [g["completion_tokens"] for g in groups] == [7, 14]


def test_with_every_group_failed_the_run_takes_the_worst_status(settings, contract) -> None:
    answers = [PREFILL, ('{"parties":[{"val', "length"), ("{not json", "stop"), ("{still not", "stop")]
    analyzer, _ = analyzer_with(settings, answers)
    [outcome] = extract(analyzer, contract, ExtractOptions(profile="embedded", field_groups=2))
    assert outcome.status == RunStatus.INVALID and outcome.result is None
    assert "field group 2 of 2 (notice_period, " in str(outcome.error) and "after one re-ask" in str(outcome.error)
    run, _doc, fields = analyzer.store.get_run(outcome.run_id)  # type: ignore[arg-type,misc]
    assert run.status == "invalid" and fields == []


@pytest.mark.engine
def test_every_group_finds_the_document_in_the_prefix_cache(tiny_engine, engine_pool, settings) -> None:
    """The real hybrid cache (tiny Qwen3-Next, CPU): after the one-token prefill, each group's prompt is served
    from the cache up to the prefix's last full block, which is all vLLM caches; one run holds every group."""
    from docanalyst.document import PageContent, build_document

    words = " ".join(f"Clause {i}: the buyer pays invoice {i * 13 % 97} within thirty days." for i in range(180))
    document = build_document([PageContent(words[i : i + 4000]) for i in range(0, len(words), 4000)],
                              path="groups.pdf", sha256="6" * 64)  # fmt: skip
    analyzer = Analyzer(settings, pool=engine_pool)
    options = ExtractOptions(template="generic", profile="qwen3-next-tiny", field_groups=2, max_output_tokens=24)
    job = analyzer.admit(analyzer.prepare_document(document.path, document, options, 0.0), options)
    assert job.groups == (("summary", "key_points"), ("entities", "dates"))  # type: ignore[union-attr]
    prefix = len(job.prompt.prefix_ids)  # type: ignore[union-attr]
    block = tiny_engine.llm.llm_engine.vllm_config.cache_config.block_size
    assert prefix > 2 * block
    [outcome] = analyzer.run([job], options)
    usage = outcome.field_groups
    assert usage is not None and usage["prefill"]["prompt_tokens"] == prefix
    assert usage["prefill"]["cached_tokens"] == 0 and usage["prefill"]["completion_tokens"] == 1
    for group, part in zip(usage["groups"], job.parts, strict=True):  # type: ignore[union-attr]
        assert group["prompt_tokens"] == len(part.prompt.token_ids) > prefix
        # every full block of the document (measured: exactly that; a group may also find the other's task)
        assert prefix // block * block <= group["cached_tokens"] < group["prompt_tokens"]
        assert 1 <= group["completion_tokens"] <= 24
    assert outcome.usage["cached_tokens"] == sum(g["cached_tokens"] for g in usage["groups"])
    runs = analyzer.store.list_runs()
    assert len(runs) == 1 and runs[0][0].id == outcome.run_id
    stored = json.loads(runs[0][0].sampling_json)["field_groups"]
    assert stored == usage and runs[0][0].cached_tokens == outcome.usage["cached_tokens"]
