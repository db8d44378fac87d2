"""Evidence by reference (issue 15, part 3): numbered sentences, the id map, resolving ids to quotes, the refs schema
and its bounds, and one real extraction with ``--evidence refs`` on the embedded engine.

The engine test asserts only what holds on any CPU: the run's status, and that every value's evidence is either the
document's own text at the recorded span (on the page the map gives) or flagged; never which sentences the model
picked.
"""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from docanalyst import cli
from docanalyst.budget import answer_schema, reserve_for
from docanalyst.document import PageContent, build_document
from docanalyst.errors import ConfigError
from docanalyst.evidence import UNIT_MAX, number_units, resolve
from docanalyst.grounding import annotate, ground, resolve_evidence, summarise
from docanalyst.output_bounds import pattern_chars
from docanalyst.pdf import load_pdf
from docanalyst.profiles import PROFILES, get_profile
from docanalyst.prompting import load_template, with_evidence
from docanalyst.schemas import iter_cited, schema_hash
from docanalyst.statuses import QuoteStatus
from docanalyst.tokenization import estimate_tokenizer

from conftest import SAMPLE_CONTRACT

REFS_STATUSES = {"cited", "unknown_reference", "no_quote", "unsupported"}
_MARKER = re.compile(r"\[S\d+\] ")

PAGES = [
    "1. Term. This Agreement begins on May 1, 2025 and continues for two (2) years. It renews\n"
    "automatically unless either party gives notice.\n\nSchedule A lists the services.",
    "Customer shall pay within thirty (30) days. Governed by the laws of Ontario.",
]


def small_document():
    return build_document([PageContent(t) for t in PAGES], path="x.pdf", sha256="0" * 64)


def test_numbering_inserts_markers_only_and_maps_every_unit_to_its_page() -> None:
    document = small_document()
    numbered = number_units(document)
    assert _MARKER.sub("", numbered.text) == document.text  # the prompt's text is the document's, markers aside
    assert [u.id for u in numbered.units] == [f"S{i}" for i in range(1, len(numbered.units) + 1)]
    texts = [document.text[u.start : u.end] for u in numbered.units]
    # "1. Term." is too short for a marker of its own: it joins its sentence; the blank line ends a unit
    assert texts[0] == "1. Term. This Agreement begins on May 1, 2025 and continues for two (2) years."
    assert texts[1] == "It renews\nautomatically unless either party gives notice."
    assert texts[2] == "Schedule A lists the services."
    for unit in numbered.units:
        page = document.page(unit.page)
        assert page.start <= unit.start < unit.end <= page.end  # never across pages
        assert f"[{unit.id}] " + document.text[unit.start : unit.end] in numbered.text
    assert [u.page for u in numbered.units] == [1, 1, 1, 2, 2]


def test_a_long_unit_is_cut_at_its_line_breaks() -> None:
    rows = "\n".join(f"row {i} value {i * 7} units delivered" for i in range(40))  # a table: no sentence ends
    document = build_document([PageContent(rows)], path="t.pdf", sha256="1" * 64)
    units = number_units(document).units
    assert len(units) > 1 and all(u.end - u.start <= UNIT_MAX for u in units)


def test_resolve_gives_the_cited_text_span_and_page() -> None:
    document = small_document()
    two = resolve(["S2", "S1"], document)  # consecutive ids are one passage, in document order, across a line break
    assert two.status == QuoteStatus.CITED and two.page == 1
    assert two.quote == document.text[two.start : two.end] and "\n" in two.quote
    assert two.quote.startswith("1. Term.") and two.quote.endswith("gives notice.")
    apart = resolve(["S1", "S3"], document)  # not consecutive: the first passage only
    first = number_units(document).units[0]
    assert (apart.start, apart.end) == (first.start, first.end)
    across = resolve(["S3", "S4"], document)  # consecutive but on two pages: the first page's unit
    assert across.page == 1 and across.quote == "Schedule A lists the services."
    second = resolve(["S5"], document)
    assert second.page == 2 and second.quote == "Governed by the laws of Ontario."
    assert resolve(["S99"], document).status == QuoteStatus.UNKNOWN_REFERENCE
    assert resolve(["S0", "x"], document).status == QuoteStatus.UNKNOWN_REFERENCE
    assert resolve(["S99", "S5"], document).quote == second.quote  # an unknown id beside a known one is ignored
    assert resolve([], document).status == QuoteStatus.NO_QUOTE


def test_ground_and_annotate_store_the_same_shape_as_quotes() -> None:
    document = small_document()
    result = {
        "term": {"value": "two years", "evidence": ["S1"]},
        "law": {"value": "Ontario", "evidence": ["S77"]},
        "none": {"value": None, "evidence": []},
        "parties": [{"value": "Customer", "role": None, "evidence": ["S4"]}],
    }
    fields = ground(document, result)
    assert [f.status for f in fields] == ["cited", "unknown_reference", "no_quote", "cited"]
    stored = annotate(result, fields)
    for _path, leaf in iter_cited(stored):
        assert {"value", "quote", "page", "span", "quote_status"} <= set(leaf)
        if leaf["quote_status"] in ("cited", "unsupported"):  # resolved ids (unsupported: they miss the value)
            start, end = leaf["span"]
            assert leaf["quote"] == document.text[start:end] and document.page_at(start) == leaf["page"]
    assert stored["parties"][0]["page"] == 2 and stored["law"]["quote"] is None
    summary = summarise(fields)
    assert (summary.quotes, summary.found, summary.on_cited_page, summary.rate) == (3, 2, 2, 0.6667)
    shown = resolve_evidence(result, document)
    assert shown["term"]["quote"] == stored["term"]["quote"] and "quote" not in result["term"]


def test_refs_template_is_another_question_with_a_bounded_schema() -> None:
    quotes = load_template("contract")
    refs = with_evidence(quotes, "refs")
    assert with_evidence(quotes, "quotes") is quotes and with_evidence(refs, "refs") is refs
    assert refs.sha256 != quotes.sha256 and schema_hash(refs.result_model) != schema_hash(quotes.result_model)
    with pytest.raises(ConfigError):
        with_evidence(quotes, "pages")
    leaf = refs.result_model.model_fields["governing_law"].annotation
    with pytest.raises(ValidationError):
        leaf.model_validate({"value": "x", "evidence": ["P1"]})
    profile = get_profile("embedded")
    schema = json.dumps(answer_schema(refs, profile, 3))
    assert '"pattern": "^S[1-9][0-9]{0,6}$"' in schema and '"quote"' not in schema
    tokenizer = estimate_tokenizer(profile.estimate_encoding)
    assert reserve_for(refs, profile, tokenizer, 3) < reserve_for(quotes, profile, tokenizer, 3)
    assert pattern_chars("^S[1-9][0-9]{0,6}$") == 8 and pattern_chars("^S[0-9]+$") is None
    assert all(p.evidence == "quotes" for p in PROFILES.values())  # the default until the figures decide


@pytest.fixture
def cli_on_embedded(cli_pool, embedded_engine, db_env):
    runner = CliRunner()
    return lambda *args: runner.invoke(cli.app, list(args), catch_exceptions=False)


@pytest.mark.engine
def test_extract_with_evidence_refs_on_the_embedded_engine(cli_on_embedded) -> None:
    # the generic template: its refs answer is at most 588 tokens (the contract's 1,335), so the test stays short
    run = cli_on_embedded("extract", str(SAMPLE_CONTRACT), "--template", "generic", "--evidence", "refs", "--json")
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["status"] == "ok", out["error"]
    document = load_pdf(SAMPLE_CONTRACT)
    units = {u.id: u for u in number_units(document).units}
    leaves = list(iter_cited(out["result"]))
    assert leaves
    for _path, leaf in leaves:
        assert leaf["quote_status"] in REFS_STATUSES
        assert {"value", "quote", "page", "span"} <= set(leaf)
        if leaf["quote_status"] in ("cited", "unsupported"):  # resolved ids (unsupported: they miss the value)
            start, end = leaf["span"]
            assert leaf["quote"] == document.text[start:end]
            first = min((units[i] for i in leaf["evidence"] if i in units), key=lambda u: u.start)
            assert leaf["page"] == first.page == document.page_at(start) and start == first.start
        else:
            assert leaf["quote"] is None and leaf["span"] is None
    grounding = out["grounding"]
    assert grounding["found"] == sum(leaf["quote_status"] == "cited" for _p, leaf in leaves)
