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


WORDS = build_document(
    [
        PageContent("The parties agree as follows. This letter is dated 3 March 2027.\nA fee of $1,000,000 is due."),
        PageContent(
            "Effective Date: 1 April 2027. It is governed by the laws of Maryland, without regard to conflicts."
        ),
        PageContent("甲方与乙方签订本合同。\n企 业 资 信 状 况"),
    ],
    path="w.pdf",
    sha256="7" * 64,
)


def test_matches_start_and_end_on_word_boundaries() -> None:
    index = DocumentIndex(WORDS)
    assert index.locate("Ties", 1).status == "not_found"  # only inside "parties"
    assert index.locate("parties", 1).status == "exact"
    assert index.locate("$1,000", 1).status == "not_found"  # only the start of $1,000,000
    assert index.locate("$1,000,000", 1).status == "exact"
    # "Date" is inside "dated" on page 1; the whole word is on page 2, so that is where it is found.
    date = index.locate("Date", 1)
    assert (date.status, date.page) == ("exact", 2)
    assert WORDS.text[date.start : date.end] == "Date"  # type: ignore[misc]
    assert index.locate("DATED", 1).status == "normalised"
    assert index.locate("ated 3 March", 1).status == "not_found"


def test_fuzzy_alignment_is_scored_on_whole_words() -> None:
    index = DocumentIndex(WORDS)
    # Character alignment would give "laws of mar" 92; on whole words ("laws of maryland") it is far below 90.
    assert index.locate("Laws of Mars.", 2).status == "not_found"
    assert index.locate("the laws of Marys", 2).status == "not_found"
    typo = index.locate("It is governed by the lows of Maryland", 2)
    assert typo.status == "fuzzy" and typo.page == 2 and 90 <= typo.score < 100  # type: ignore[operator]
    assert WORDS.text[typo.start : typo.end] == "It is governed by the laws of Maryland"  # type: ignore[misc]
    # Short quotes get no fuzzy level: one edit is already another word.
    assert index.locate("dated 3 Marh 2027", 1).status == "not_found"
    # An alignment that begins on the "2" of "4.8.2" is narrowed to the words: the span starts at "The".
    numbered = DocumentIndex(build_document([PageContent("4.8.2 The Party shall keep the other party advised.")],
                                            path="n.pdf", sha256="8" * 64))  # fmt: skip
    advised = numbered.locate("2 The Party shall keep the other party advisd.", 1)
    assert (
        advised.status == "fuzzy"
        and numbered.text[advised.start : advised.end] == "The Party shall keep the other party advised"
    )  # type: ignore[misc]


def test_cjk_characters_are_words() -> None:
    index = DocumentIndex(WORDS)
    inner = index.locate("乙方", 3)
    assert inner.status == "exact" and WORDS.text[inner.start : inner.end] == "乙方"  # type: ignore[misc]
    spaced = index.locate("资信", None)
    assert spaced.status == "normalised" and WORDS.text[spaced.start : spaced.end] == "资 信"  # type: ignore[misc]
