from docanalyst.document import PageContent, build_document
from docanalyst.grounding import annotate, ground
from docanalyst.schemas import ContractResult

DOC = build_document(
    [
        PageContent("This Agreement is made between\nAcme Corp and Beta LLC."),
        PageContent("It is governed by the laws of the\n  State of New York."),
    ],
    path="c.pdf",
    sha256="1" * 64,
)


def result(**fields):
    return ContractResult.model_validate(fields).model_dump()


def test_quote_statuses() -> None:
    res = result(
        parties=[{"value": "Acme Corp", "role": "seller", "quote": "between Acme Corp and", "page": 1}],
        governing_law={"value": "New York", "quote": "laws of the State of New York", "page": 1},
        term={"value": "2 years", "quote": "for two years", "page": 2},
        renewal={"value": None, "quote": None, "page": None},
    )
    by_path = {f.path: f for f in ground(DOC, res)}
    assert by_path["parties[0]"].status == "found" and by_path["parties[0]"].found_page == 1
    # Quoted across a line break, on the wrong page: found on page 2.
    assert by_path["governing_law"].status == "other_page" and by_path["governing_law"].found_page == 2
    assert by_path["term"].status == "not_found" and not by_path["term"].quote_found
    assert by_path["renewal"].status == "no_quote"


def test_annotate_marks_each_cited_value() -> None:
    res = result(governing_law={"value": "New York", "quote": "State of New York.", "page": 2})
    annotated = annotate(res, ground(DOC, res))
    assert annotated["governing_law"]["quote_status"] == "found"
    assert annotated["governing_law"]["quote_found"] is True
    assert "quote_status" not in res["governing_law"]
