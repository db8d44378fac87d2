"""What each template field is, for scoring: its kind (how values compare) and whether it holds a list.

The kinds follow the normalisers: a date compares as a date, a notice period as a duration, governing law
as a jurisdiction, parties and authors as names. A *presence* field is scored only on whether the
document has it (CUAD labels "Cap On Liability" Yes/No, not its wording).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from docanalyst.evaluation.normalize import (
    names_match,
    parse_date,
    parse_durations,
    parse_jurisdictions,
    passage_matches,
    texts_match,
)

Kind = Literal["date", "duration", "jurisdiction", "names", "text", "passage", "presence"]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: Kind
    many: bool = False


def _specs(*specs: FieldSpec) -> dict[str, FieldSpec]:
    return {s.name: s for s in specs}


FIELD_SPECS: dict[str, dict[str, FieldSpec]] = {
    "contract": _specs(
        FieldSpec("parties", "names", many=True),
        FieldSpec("agreement_date", "date"),
        FieldSpec("effective_date", "date"),
        FieldSpec("expiration_date", "date"),
        FieldSpec("term", "duration"),
        FieldSpec("renewal", "duration"),
        FieldSpec("notice_period", "duration"),
        FieldSpec("governing_law", "jurisdiction"),
        FieldSpec("liability_cap", "presence"),
        FieldSpec("payment_terms", "text"),
        FieldSpec("termination_rights", "text", many=True),
        FieldSpec("key_obligations", "text", many=True),
    ),
    "paper": _specs(
        FieldSpec("title", "text"),
        FieldSpec("authors", "names", many=True),
        FieldSpec("abstract", "passage"),
        FieldSpec("contributions", "text", many=True),
        FieldSpec("methods", "text", many=True),
        FieldSpec("datasets", "text", many=True),
        FieldSpec("results", "text", many=True),
        FieldSpec("limitations", "text", many=True),
    ),
    "generic": _specs(
        FieldSpec("summary", "passage"),
        FieldSpec("key_points", "text", many=True),
        FieldSpec("entities", "names", many=True),
        FieldSpec("dates", "date", many=True),
    ),
}


def _endless(text: str) -> bool:
    return any(d.unit == "endless" for d in parse_durations(text))


def values_match(kind: Kind, predicted: str, expected: str) -> bool:
    """Does one predicted value say what one labelled value says? Falls back to text comparison when the
    label is not of the field's kind (an expiration date labelled "perpetual")."""
    if kind == "date":
        want = parse_date(expected)
        if want is None:
            return _endless(predicted) if _endless(expected) else texts_match(predicted, expected)
        got = parse_date(predicted)
        return got is not None and want.matches(got)
    if kind == "duration":
        wanted = parse_durations(expected)
        if not wanted:
            return texts_match(predicted, expected)
        return wanted[0] in parse_durations(predicted)
    if kind == "jurisdiction":
        places = parse_jurisdictions(expected)
        if not places:
            return texts_match(predicted, expected)
        return bool(set(places) & set(parse_jurisdictions(predicted)))
    if kind == "names":
        return names_match(predicted, expected)
    if kind == "passage":
        return passage_matches(predicted, expected)
    if kind == "presence":
        return True
    return texts_match(predicted, expected)
