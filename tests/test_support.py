"""Grounding that cannot be fooled (support.py): a quote found on the page is evidence only when it is informative
and says what its value says. The cases are the ones a new user met in the web app (issue 17)."""

from __future__ import annotations

import pytest

from docanalyst.document import PageContent, build_document
from docanalyst.evaluation.normalize import PartialDate, parse_dates
from docanalyst.grounding import annotate, ground, summarise
from docanalyst.schemas import GenericResult
from docanalyst.statuses import GroundingVerdict, QuoteStatus
from docanalyst.support import informative, supports

DOC = build_document(
    [
        PageContent("SERVICES AGREEMENT (the “Agreement”) dated March 3, 2025 (the “Effective Date”) between"),
        PageContent(
            "Northwind Limited (“Supplier”) and Bluefin Inc. (“Customer”). Either party may end it on thirty (30)\n"
            "days’ notice. Fees are payable in USD (see Schedule (A)). Governed by the laws of the State of New York."
        ),
    ],
    path="c.pdf",
    sha256="2" * 64,
)


def generic(**fields):
    return GenericResult.model_validate(fields).model_dump()


def test_a_one_character_quote_is_never_verified() -> None:
    """The web app's case: dates[0] = "March 3, 2025 (the" quoting ")" was shown as an exact match on its page,
    with every ")" of the page highlighted. It is too short to prove anything: no span, not found, not verified."""
    res = generic(dates=[{"value": "March 3, 2025 (the", "quote": ")", "page": 2}])
    [field] = quoted(ground(DOC, res))
    assert field.status == QuoteStatus.TOO_SHORT and not field.quote_found
    assert (field.span_start, field.span_end, field.found_page) == (None, None, None)  # nothing to highlight
    [cited] = [c for _, c in _cited(annotate(res, [field])) if c["quote"]]
    assert cited["quote_status"] == "too_short" and cited["quote_found"] is False and cited["span"] is None
    summary = summarise([field])
    assert (summary.found, summary.too_short, summary.verdict) == (0, 1, GroundingVerdict.UNGROUNDED)


@pytest.mark.parametrize("quote", ["USD", "(A)", "the", "Inc."])
def test_short_common_quotes_are_too_short_even_when_found(quote: str) -> None:
    assert quote in DOC.text and not informative(quote)
    [field] = quoted(ground(DOC, generic(summary={"value": "payment in US dollars", "quote": quote, "page": 2})))
    assert field.status == QuoteStatus.TOO_SHORT and not field.quote_found


def test_a_real_quote_that_does_not_say_the_value_is_unsupported() -> None:
    """The quote is on the page, verbatim, but it is about notice, not the date the model wrote."""
    res = generic(dates=[{"value": "April 9, 2031", "quote": "Either party may end it on thirty (30)", "page": 2}])
    [field] = quoted(ground(DOC, res))
    assert field.status == QuoteStatus.UNSUPPORTED and not field.quote_found
    assert field.span_start is not None and DOC.text[field.span_start : field.span_end].startswith("Either party")
    assert summarise([field]).unsupported == 1


def test_values_supported_by_their_quote_or_its_neighbourhood_are_verified() -> None:
    res = generic(
        dates=[
            {"value": "2025-03-03", "quote": "dated March 3, 2025", "page": 1},  # a date as a date
            {"value": "March 3, 2025", "quote": "SERVICES AGREEMENT (the “Agreement”)", "page": 1},  # just after
        ],
        entities=[{"value": "Northwind Ltd", "quote": "Northwind Limited (“Supplier”)", "page": 2}],
        key_points=[{"value": "30 days", "quote": "Either party may end it on thirty (30) days’ notice", "page": 2}],
    )
    fields = quoted(ground(DOC, res))
    assert {f.path: f.status for f in fields} == {
        "dates[0]": "exact", "dates[1]": "exact", "entities[0]": "exact", "key_points[0]": "normalised"
    }  # fmt: skip
    summary = summarise(fields)
    assert (summary.asserted, summary.verified, summary.verdict) == (4, 4, GroundingVerdict.GROUNDED)


def test_the_verdict_follows_the_share_of_verified_values() -> None:
    good = {"value": "New York", "quote": "the laws of the State of New York", "page": 2}
    bad = {"value": "Texas", "quote": "the laws of the State of New York", "page": 2}
    null = {"value": None, "quote": None, "page": None}
    verdict = lambda *items: summarise(ground(DOC, generic(key_points=list(items)))).verdict  # noqa: E731
    assert verdict(good, good, good, good, bad) == GroundingVerdict.GROUNDED  # 4 of 5
    assert verdict(good, bad) == GroundingVerdict.WEAK  # 1 of 2
    assert verdict(good, bad, bad) == GroundingVerdict.UNGROUNDED  # 1 of 3
    assert verdict(null, null) == GroundingVerdict.GROUNDED  # nothing asserted, nothing to prove


def test_kinds_of_values() -> None:
    assert supports("2025-03-03", "the 3rd day of March, 2025") and not supports("2025-03-04", "March 3, 2025")
    assert supports("12 months", "for twelve (12) months") and not supports("6 months", "for twelve (12) months")
    assert supports("New York", "the laws of the State of New York") and not supports("York", "the State of Maine")
    assert supports("$1,000,000", "a cap of $1 000 000 in total") and not supports("$1,000", "a cap of $1,000,000")
    assert supports(None, "anything") and supports("yes", "anything") and supports("N/A", "anything")
    assert parse_dates("from 4/6/99 to the 6th day of April, 2000") == [
        PartialDate(1999, 4, 6),
        PartialDate(2000, 4, 6),
    ]


def quoted(fields: list) -> list:
    """The values that came with a quote (every generic result also has its empty ``summary``)."""
    return [f for f in fields if f.quote]


def _cited(result: dict):
    from docanalyst.schemas import iter_cited

    return iter_cited(result)
