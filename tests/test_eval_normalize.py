"""Normalisers: the forms labels and predictions are compared in (exact outputs)."""

from __future__ import annotations

import pytest

from docanalyst.evaluation.fields import values_match
from docanalyst.evaluation.normalize import (
    Duration,
    PartialDate,
    is_null,
    name_key,
    names_match,
    parse_date,
    parse_durations,
    parse_jurisdictions,
    passage_matches,
    texts_match,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4/6/99", PartialDate(1999, 4, 6)),
        ("6/1/20", PartialDate(2020, 6, 1)),
        ("the 6th day of April, 1999", PartialDate(1999, 4, 6)),
        ("April 6th, 1999", PartialDate(1999, 4, 6)),
        ("Sept. 7, 1999", PartialDate(1999, 9, 7)),
        ("1999-04-06", PartialDate(1999, 4, 6)),
        ("effective as of March 2020", PartialDate(2020, 3)),
        ("[]/[]/2020", PartialDate(2020)),
        ("from April 1, 1999 until October 1, 1999", PartialDate(1999, 4, 1)),  # the first date
        ("13/45/2020", None),
        ("upon signature", None),
        (None, None),
    ],
)
def test_parse_date(text: str | None, expected: PartialDate | None) -> None:
    assert parse_date(text) == expected


def test_partial_dates_match_only_on_what_both_give() -> None:
    assert PartialDate(2020, 3, 1).matches(PartialDate(2020, 3, 1))
    assert not PartialDate(2020, 3, 1).matches(PartialDate(2020, 3))
    assert not PartialDate(2020, 3, 1).matches(PartialDate(2020, 3, 2))
    assert PartialDate(2020).matches(PartialDate(2020))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("successive 1 month", [Duration(1, "month")]),
        ("one (1) or more one (1) month periods", [Duration(1, "month")]),
        ("thirty (30) calendar days", [Duration(30, "day")]),
        ("two weeks", [Duration(14, "day")]),
        ("successive one-year terms", [Duration(12, "month")]),
        ("12 months, then 90 days' notice", [Duration(12, "month"), Duration(90, "day")]),
        ("in perpetuity", [Duration(0, "endless")]),
        ("no term stated", []),
    ],
)
def test_parse_durations(text: str, expected: list[Duration]) -> None:
    assert parse_durations(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the laws of the State of New York, without regard to conflicts", ["New York"]),
        ("West Virginia", ["West Virginia"]),
        ("Delaware law; courts of New York County", ["Delaware", "New York"]),
        ("Washington, D.C.", ["District of Columbia"]),
        ("England and Wales", ["England and Wales"]),
        ("the laws of the Province of Ontario and the federal laws of Canada", ["Ontario", "Canada"]),
        ("governed by applicable law", []),
    ],
)
def test_parse_jurisdictions(text: str, expected: list[str]) -> None:
    assert parse_jurisdictions(text) == expected


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ('Centrack International Inc. ("Customer")', "centrack international"),
        ("Antons, Jan-Niklas", "jan niklas antons"),
        ("Eco Science Solutions, Inc", "eco science solutions"),
        ("The Coca-Cola Company", "coca cola"),
        ("AT&T Corp.", "at and t"),
    ],
)
def test_name_key(name: str, key: str) -> None:
    assert name_key(name) == key


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("StefanSchoenmackers", "Stefan Schoenmackers", True),
        ("Sphere 3D", "Sphere 3D Corp.", True),
        ("Möller, Sebastian", "M\ufffdller, Sebastian", True),
        ("Marco Baroni", "Baroni, Marco", True),
        ("GROUPE PARAMEUS CORP", "Sphere 3D Corp", False),
        ("Inc.", "Acme Inc.", False),
    ],
)
def test_names_match(a: str, b: str, same: bool) -> None:
    assert names_match(a, b) is same


def test_text_and_passage_matching() -> None:
    assert texts_match(
        "S2ORC: The Semantic Scholar Open Research Corpus", "s2orc the semantic scholar open research corpus"
    )
    assert not texts_match("Sparse Information Extraction", "Learning to Extract Relations from the Web")
    abstract = "We introduce S2ORC, a large corpus of 81.1M English-language academic papers spanning many disciplines."
    assert passage_matches("a large corpus of 81.1M English-language academic papers", abstract)
    assert not passage_matches("a small corpus", abstract)  # too short to count as a piece of it
    assert not passage_matches("This paper studies the stock market in 2010 and its crashes.", abstract)


@pytest.mark.parametrize("value", [None, "", "N/A", "Not specified.", "none", "Unknown"])
def test_null_words(value: str | None) -> None:
    assert is_null(value)


def test_values_match_by_kind() -> None:
    assert values_match("date", "the 6th day of April, 1999", "4/6/99")
    assert not values_match("date", "April 1, 1999", "4/6/99")
    assert values_match("date", "This Agreement shall continue in perpetuity", "perpetual")
    assert values_match("duration", "fifteen (15) days before the end of the term", "15 days")
    assert not values_match("duration", "thirty (30) days", "15 days")
    assert values_match("duration", "one (1) year", "12 months")
    assert values_match("jurisdiction", "the laws of the State of Florida", "Florida")
    assert not values_match("jurisdiction", "the laws of the State of Texas", "Florida")
