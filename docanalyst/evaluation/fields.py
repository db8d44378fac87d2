"""What each template field is, for scoring: its kind (how values compare) and whether it holds a list.
A template declares its fields' kinds (templates/spec.py); this module says what each kind means.

The kinds follow the normalisers: a date compares as a date, a notice period as a duration, governing law
as a jurisdiction, parties and authors as names. A *presence* field is scored only on whether the
document has it (CUAD labels "Cap On Liability" Yes/No, not its wording).
"""

from __future__ import annotations

from docanalyst.evaluation.normalize import (
    names_match,
    parse_date,
    parse_durations,
    parse_jurisdictions,
    passage_matches,
    texts_match,
)
from docanalyst.templates import FieldSpec, builtins
from docanalyst.templates.spec import Kind

__all__ = ["FIELD_SPECS", "FieldSpec", "Kind", "values_match"]

# The kinds and each template's specs are declared with the template (docanalyst/templates): the eval view of
# a user's template is derived like a built-in's. FIELD_SPECS is that view of the built-ins, by name.
FIELD_SPECS: dict[str, dict[str, FieldSpec]] = {t.name: dict(t.field_specs) for t in builtins()}


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
