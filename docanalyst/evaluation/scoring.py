"""Scoring: each labelled field of each document is right, wrong, missing, spurious or rightly absent.

- right: the prediction says what the label says (after normalising);
- wrong: both have a value and they differ;
- missing: the label has a value, the prediction is null (or the run produced no valid answer);
- spurious: the label says the document has none, the prediction has one;
- absent_ok: both say none.
List fields (parties, authors) are matched item by item, one prediction to one label; a repeated
prediction (same normalised name) is one claim, not two.

precision = right / (right + wrong + spurious), recall = right / (right + wrong + missing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from typing import Any

from docanalyst.evaluation.datasets import Expected
from docanalyst.evaluation.fields import FieldSpec, values_match
from docanalyst.evaluation.normalize import is_null, name_key, plain


@dataclass
class Counts:
    right: int = 0
    wrong: int = 0
    missing: int = 0
    spurious: int = 0
    absent_ok: int = 0

    def add(self, other: Counts) -> None:
        for name in ("right", "wrong", "missing", "spurious", "absent_ok"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def precision(self) -> float | None:
        claimed = self.right + self.wrong + self.spurious
        return self.right / claimed if claimed else None

    @property
    def recall(self) -> float | None:
        labelled = self.right + self.wrong + self.missing
        return self.right / labelled if labelled else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def scored(self) -> int:
        return self.right + self.wrong + self.missing + self.spurious + self.absent_ok

    def as_dict(self) -> dict[str, Any]:
        rounded = {k: None if v is None else round(v, 4) for k, v in
                   (("precision", self.precision), ("recall", self.recall), ("f1", self.f1))}  # fmt: skip
        return {**asdict(self), **rounded}


@dataclass
class FieldScore:
    field: str
    kind: str
    expected: list[str]
    predicted: list[str]
    counts: Counts = dataclass_field(default_factory=Counts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "kind": self.kind,
            "expected": self.expected,
            "predicted": self.predicted,
            **asdict(self.counts),
        }


def predicted_values(result: Mapping[str, Any] | None, spec: FieldSpec) -> list[str]:
    """The values a result gives for a field (null-like strings such as "Not specified" dropped)."""
    if not result:
        return []
    raw = result.get(spec.name)
    items = raw if isinstance(raw, list) else [raw]
    values: list[str] = []
    for item in items:
        value = item.get("value") if isinstance(item, Mapping) else item
        if isinstance(value, str) and not is_null(value):
            values.append(value.strip())
    return values


def _dedupe(values: Sequence[str], kind: str) -> list[str]:
    seen: set[str] = set()
    kept: list[str] = []
    for value in values:
        key = name_key(value) if kind == "names" else plain(value)
        if key not in seen:
            seen.add(key)
            kept.append(value)
    return kept


def score_field(spec: FieldSpec, expected: Expected, predicted: Sequence[str]) -> FieldScore:
    counts = Counts()
    score = FieldScore(spec.name, spec.kind, list(expected.values), list(predicted), counts)
    wanted = list(expected.values)
    if not spec.many:
        got = predicted[0] if predicted else None
        if not wanted:
            counts.spurious, counts.absent_ok = (1, 0) if got else (0, 1)
        elif got is None:
            counts.missing = 1
        elif values_match(spec.kind, got, wanted[0]) or any(values_match(spec.kind, got, a) for a in expected.aliases):
            counts.right = 1
        else:
            counts.wrong = 1
        return score
    claims = _dedupe(predicted, spec.kind)
    if not wanted and not claims:
        counts.absent_ok = 1
        return score
    unmatched = list(range(len(wanted)))
    for claim in claims:
        hit = next((i for i in unmatched if values_match(spec.kind, claim, wanted[i])), None)
        if hit is None and expected.aliases and any(values_match(spec.kind, claim, a) for a in expected.aliases):
            # a defined term ("Customer"): credit the first label still open, else it is a repeat
            hit = unmatched[0] if unmatched else -1
        if hit is None:
            counts.spurious += 1
        elif hit >= 0:
            unmatched.remove(hit)
            counts.right += 1
    counts.missing = len(unmatched)
    return score


def score_result(
    result: Mapping[str, Any] | None, labels: Mapping[str, Expected], specs: Mapping[str, FieldSpec]
) -> list[FieldScore]:
    """Every labelled field of one document; ``result`` None (no valid answer) leaves every label missing."""
    return [score_field(specs[name], expected, predicted_values(result, specs[name])) for name, expected in
            labels.items() if name in specs]  # fmt: skip


def total(scores: Iterable[FieldScore]) -> Counts:
    counts = Counts()
    for s in scores:
        counts.add(s.counts)
    return counts


def by_field(scores: Iterable[FieldScore]) -> dict[str, Counts]:
    out: dict[str, Counts] = {}
    for s in scores:
        out.setdefault(s.field, Counts()).add(s.counts)
    return out
