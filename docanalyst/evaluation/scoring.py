"""Scoring: each labelled field of each document is right, wrong, missing, spurious or rightly absent.

- right: the prediction says what the label says (after normalising);
- wrong: both have a value and they differ;
- missing: the label has a value, the prediction is null (or the run produced no valid answer);
- spurious: the label says the document has none, the prediction has one;
- absent_ok: both say none.
List fields (parties, authors) are matched item by item, one prediction to one label; a repeated
prediction (same normalised name) is one claim, not two.

precision = right / (right + wrong + spurious), recall = right / (right + wrong + missing).

Ranked, CUAD-style (Hendrycks et al. 2021, their evaluate.py): every claim (a value the model gave: right, wrong
or spurious) carries its confidence (confidence.py). Lowering a threshold from the top admits claims in order of
confidence; a claim below it is not made, so its label (if any) counts as missing and the recall's denominator,
the labelled values, stays fixed. Each threshold gives one (recall, precision) point, after CUAD's anchor (0, 1)
and its top threshold where nothing is claimed yet (recall 0, precision NaN). As in CUAD, precision is made
non-increasing in recall (each point takes the best precision at any later point; the NaN takes the best after
it, as CUAD's ``max`` does, so the curve starts flat at recall 0), **precision at 80 % recall** is that precision
at the highest threshold whose recall reaches 0.8 (0 when even all claims do not reach it), and **AUPR** is the
trapezoid area under those points (``sklearn.metrics.auc``). CUAD sweeps a grid of thresholds (0.99, 0.98, ...
0.01, 0.001, 0, a claim is made when its probability is above the threshold); we sweep every distinct confidence,
the grid's limit, since our confidences bunch above 0.99 (tests/test_eval_scoring.py checks the two agree on
CUAD's grid). A field with no labelled value, or with a claim that has no confidence (a run stored before
confidences), has no ranked figures (None).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from typing import Any

from docanalyst.evaluation.datasets import Expected
from docanalyst.evaluation.fields import FieldSpec, values_match
from docanalyst.evaluation.normalize import is_null, name_key, plain
from docanalyst.schemas import iter_cited


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


@dataclass(frozen=True)
class Claim:
    """One value the model gave for a field, with its confidence, and whether it matched a label."""

    value: str
    confidence: float | None
    right: bool


@dataclass
class FieldScore:
    field: str
    kind: str
    expected: list[str]
    predicted: list[str]
    counts: Counts = dataclass_field(default_factory=Counts)
    claims: list[Claim] = dataclass_field(default_factory=list)  # right + wrong + spurious, ranked later

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "kind": self.kind,
            "expected": self.expected,
            "predicted": self.predicted,
            **asdict(self.counts),
            "claims": [asdict(c) for c in self.claims],
        }


def predictions(result: Mapping[str, Any] | None, spec: FieldSpec) -> list[tuple[str, float | None]]:
    """The values a result gives for a field with their confidences (null-like strings such as "Not specified"
    dropped; the confidence is None in results stored before confidences)."""
    if not result:
        return []
    raw = result.get(spec.name)
    items = raw if isinstance(raw, list) else [raw]
    values: list[tuple[str, float | None]] = []
    for item in items:
        value = item.get("value") if isinstance(item, Mapping) else item
        confidence = item.get("confidence") if isinstance(item, Mapping) else None
        if isinstance(value, str) and not is_null(value):
            values.append((value.strip(), float(confidence) if isinstance(confidence, int | float) else None))
    return values


def with_confidences(result: Mapping[str, Any], confidences: Mapping[str, float]) -> dict[str, Any]:
    """A copy of a result whose values carry these confidences (by field path; a path not given gets None): the
    same answer, ranked under another aggregation."""
    copied = copy.deepcopy(dict(result))
    for path, cited in iter_cited(copied):
        cited["confidence"] = confidences.get(path)
    return copied


def predicted_values(result: Mapping[str, Any] | None, spec: FieldSpec) -> list[str]:
    """The values a result gives for a field (null-like strings such as "Not specified" dropped)."""
    return [value for value, _ in predictions(result, spec)]


def _dedupe(values: Sequence[str], kind: str) -> list[int]:
    """Indices of the first occurrence of each distinct value (a repeat is one claim, with the first's score)."""
    seen: set[str] = set()
    kept: list[int] = []
    for i, value in enumerate(values):
        key = name_key(value) if kind == "names" else plain(value)
        if key not in seen:
            seen.add(key)
            kept.append(i)
    return kept


def score_field(
    spec: FieldSpec,
    expected: Expected,
    predicted: Sequence[str],
    confidences: Sequence[float | None] | None = None,
) -> FieldScore:
    """Count one field of one document; ``confidences`` (parallel to ``predicted``) go onto its claims."""
    counts = Counts()
    score = FieldScore(spec.name, spec.kind, list(expected.values), list(predicted), counts)
    conf = list(confidences) if confidences is not None else [None] * len(predicted)
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
        if got:
            score.claims.append(Claim(got, conf[0], bool(counts.right)))
        return score
    firsts = _dedupe(predicted, spec.kind)
    if not wanted and not firsts:
        counts.absent_ok = 1
        return score
    unmatched = list(range(len(wanted)))
    for at in firsts:
        claim = predicted[at]
        hit = next((i for i in unmatched if values_match(spec.kind, claim, wanted[i])), None)
        if hit is None and expected.aliases and any(values_match(spec.kind, claim, a) for a in expected.aliases):
            # a defined term ("Customer"): credit the first label still open, else it is a repeat
            hit = unmatched[0] if unmatched else -1
        if hit is None:
            counts.spurious += 1
            score.claims.append(Claim(claim, conf[at], False))
        elif hit >= 0:
            unmatched.remove(hit)
            counts.right += 1
            score.claims.append(Claim(claim, conf[at], True))
    counts.missing = len(unmatched)
    return score


def score_result(
    result: Mapping[str, Any] | None, labels: Mapping[str, Expected], specs: Mapping[str, FieldSpec]
) -> list[FieldScore]:
    """Every labelled field of one document; ``result`` None (no valid answer) leaves every label missing."""
    scores: list[FieldScore] = []
    for name, expected in labels.items():
        if name in specs:
            given = predictions(result, specs[name])
            scores.append(score_field(specs[name], expected, [v for v, _ in given], [c for _, c in given]))
    return scores


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


def pr_points(claims: Sequence[tuple[float, bool]], labelled: int) -> list[tuple[float, float]]:
    """(recall, precision) at each distinct confidence, highest first, after CUAD's anchor (0, 1) and its empty top
    threshold (0, NaN); ``claims`` are (confidence, right) pairs and ``labelled`` the values the labels hold
    (right + wrong + missing)."""
    points = [(0.0, 1.0), (0.0, math.nan)]
    ordered = sorted(claims, key=lambda c: -c[0])
    right = claimed = i = 0
    while i < len(ordered):
        threshold = ordered[i][0]
        while i < len(ordered) and ordered[i][0] == threshold:
            claimed += 1
            right += ordered[i][1]
            i += 1
        points.append((right / labelled, right / claimed))
    return points


def interpolated(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """CUAD's ``process_precisions``: each precision raised to the best precision at any later point; a NaN (no
    claim at that threshold) takes that best."""
    out: list[tuple[float, float]] = []
    best = 0.0
    for recall, precision in reversed(points):
        best = best if math.isnan(precision) else max(best, precision)
        out.append((recall, best))
    return out[::-1]


def aupr(claims: Sequence[tuple[float, bool]], labelled: int) -> float | None:
    """Area under the interpolated precision-recall points (trapezoids); None when nothing is labelled."""
    if labelled <= 0:
        return None
    points = interpolated(pr_points(claims, labelled))
    return sum((r1 - r0) * (p0 + p1) / 2 for (r0, p0), (r1, p1) in itertools.pairwise(points))


def precision_at_recall(claims: Sequence[tuple[float, bool]], labelled: int, recall: float = 0.8) -> float | None:
    """The interpolated precision at the highest threshold whose recall reaches ``recall``: 0.0 when the claims
    never reach it, None when nothing is labelled."""
    if labelled <= 0:
        return None
    for r, p in interpolated(pr_points(claims, labelled)):
        if r >= recall - 1e-12:
            return p
    return 0.0


def ranked(scores: Iterable[FieldScore]) -> dict[str, float | int | None]:
    """CUAD's figures for a set of field scores pooled together (one field over all documents, or all fields):
    AUPR and precision at 80 % recall; None without labels or when a claim has no confidence."""
    scores = list(scores)
    claims = [c for s in scores for c in s.claims]
    labelled = sum(s.counts.right + s.counts.wrong + s.counts.missing for s in scores)
    unscored = sum(c.confidence is None for c in claims)
    pairs = [(float(c.confidence), c.right) for c in claims if c.confidence is not None]
    usable = not unscored
    area = aupr(pairs, labelled) if usable else None
    at80 = precision_at_recall(pairs, labelled, 0.8) if usable else None
    return {
        "aupr": None if area is None else round(area, 4),
        "precision_at_80_recall": None if at80 is None else round(at80, 4),
        "claims": len(claims),
        "claims_without_confidence": unscored,
    }


def ranked_by_field(scores: Iterable[FieldScore]) -> dict[str, dict[str, float | int | None]]:
    groups: dict[str, list[FieldScore]] = {}
    for s in scores:
        groups.setdefault(s.field, []).append(s)
    return {name: ranked(group) for name, group in groups.items()}
