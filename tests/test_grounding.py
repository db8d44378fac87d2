from docanalyst.document import PageContent, build_document
from docanalyst.grounding import DocumentIndex, annotate, ground, normalise, summarise
from docanalyst.schemas import ContractResult

DOC = build_document(
    [
        PageContent("This Agreement is made between\nAcme Corp and Beta LLC, an inter-\nnational company."),
        PageContent("It is governed by the laws of the\n  State of New York. Payment is due in “thirty” days."),
    ],
    path="c.pdf",
    sha256="1" * 64,
)


def result(**fields):
    return ContractResult.model_validate(fields).model_dump()


def test_levels_spans_and_pages() -> None:
    index = DocumentIndex(DOC)
    exact = index.locate("Acme Corp and Beta LLC", 1)
    assert (exact.status, exact.page) == ("exact", 1)
    assert DOC.text[exact.start : exact.end] == "Acme Corp and Beta LLC"  # type: ignore[misc]
    # Across a line break, with different case and straight quotes: normalised, span maps back to the source.
    norm = index.locate('laws of the state of new york. payment is due in "thirty" days', 2)
    assert (norm.status, norm.page) == ("normalised", 2)
    assert DOC.text[norm.start : norm.end] == "laws of the\n  State of New York. Payment is due in “thirty” days"  # type: ignore[misc]
    # A word hyphenated at a line end.
    hyphen = index.locate("an international company", 1)
    assert hyphen.status == "normalised" and DOC.text[hyphen.start : hyphen.end] == "an inter-\nnational company"  # type: ignore[misc]
    # One word changed: fuzzy, with its score.
    fuzzy = index.locate("It is governed by the laws of the State of New Jersey", 2)
    assert fuzzy.status == "fuzzy" and fuzzy.page == 2 and 90 <= fuzzy.score < 100  # type: ignore[operator]
    assert index.locate("The licensee shall pay royalties quarterly", 1).status == "not_found"
    assert index.locate("   ", 1).status == "no_quote"


def test_cjk_and_right_to_left_text() -> None:
    doc = build_document(
        [PageContent("第七章\n企 业 资 信 状 况\n发行人历史信用评级情况"), PageContent("مرحبا بالعالم\nhabibi حَبيبي")],
        path="x.pdf",
        sha256="5" * 64,
    )
    index = DocumentIndex(doc)
    cjk = index.locate("企业资信状况", 1)
    assert cjk.status == "normalised" and doc.text[cjk.start : cjk.end] == "企 业 资 信 状 况"  # type: ignore[misc]
    assert index.locate("发行人历史信用评级情况", None).status == "exact"
    rtl = index.locate("مرحبا بالعالم habibi", 2)
    assert rtl.status == "normalised" and rtl.page == 2
    assert normalise("ﬁnal  Ｖersion") == "final version"


def test_fields_record_the_real_page_and_summary() -> None:
    res = result(
        parties=[{"value": "Acme Corp", "role": "seller", "quote": "Acme Corp and Beta LLC", "page": 1}],
        governing_law={"value": "New York", "quote": "laws of the State of New York", "page": 1},
        term={"value": "2 years", "quote": "for two years", "page": 2},
        renewal={"value": None, "quote": None, "page": None},
    )
    by_path = {f.path: f for f in ground(DOC, res)}
    assert by_path["parties[0]"].status == "exact" and by_path["parties[0]"].page_match
    law = by_path["governing_law"]
    assert law.status == "normalised" and law.found_page == 2 and not law.page_match
    assert by_path["term"].status == "not_found" and not by_path["term"].quote_found
    assert by_path["renewal"].status == "no_quote"
    summary = summarise(list(by_path.values()))
    assert (summary.quotes, summary.found, summary.on_cited_page, summary.not_found) == (3, 2, 1, 1)
    assert summary.rate == 0.6667


def test_annotate_marks_each_cited_value() -> None:
    res = result(governing_law={"value": "New York", "quote": "State of New York.", "page": 2})
    annotated = annotate(res, ground(DOC, res))
    law = annotated["governing_law"]
    assert law["quote_status"] == "exact" and law["quote_found"] is True and law["found_page"] == 2
    assert DOC.text[law["span"][0] : law["span"][1]] == "State of New York."
    assert "quote_status" not in res["governing_law"]
