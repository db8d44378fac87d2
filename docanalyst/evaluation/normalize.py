"""Normalisers: dates, durations, jurisdictions, names and free text into forms that can be compared.

Why: a label says ``4/6/99`` and a model says "the 6th day of April, 1999"; a label says ``Florida`` and a
model quotes "the laws of the State of Florida". Exact string comparison would call both wrong. Each
normaliser returns ``None`` when it finds nothing of its kind, so callers can fall back to text comparison.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz import fuzz

NULL_WORDS = frozenset(
    {
        "",
        "-",
        "none",
        "null",
        "nil",
        "n/a",
        "na",
        "unknown",
        "not specified",
        "not stated",
        "not mentioned",
        "not applicable",
        "not provided",
        "not available",
        "no",
    }
)


def is_null(value: str | None) -> bool:
    """Values that say "the document does not say" (small models write them instead of null)."""
    return value is None or value.strip().strip(".").casefold() in NULL_WORDS


_PLAIN_PUNCTUATION = {0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"', 0x2013: "-"}


def fold(text: str) -> str:
    """Lower case, accents removed, typographic quotes and dashes made plain, whitespace collapsed."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch) and ch != "\ufffd")
    text = text.translate(_PLAIN_PUNCTUATION)
    return re.sub(r"\s+", " ", text).strip().casefold()


def plain(text: str) -> str:
    """``fold`` and punctuation removed: the form free text is compared in."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", fold(text))).strip()


# ---- dates --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartialDate:
    """A date as far as the text gives it: "March 2020" has no day; a redacted "[]/[]/2020" only a year."""

    year: int
    month: int | None = None
    day: int | None = None

    def __str__(self) -> str:
        return "-".join(f"{part:02d}" if i else str(part) for i, part in enumerate(self.parts()))

    def parts(self) -> tuple[int, ...]:
        return tuple(p for p in (self.year, self.month, self.day) if p is not None)

    def matches(self, other: PartialDate) -> bool:
        """Equal in every part both sides give (a label with a day needs the prediction's day)."""
        if self.year != other.year:
            return False
        if self.month is None or other.month is None:
            return self.month is None and other.month is None
        if self.month != other.month:
            return False
        return self.day == other.day


MONTHS = {
    name: i
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>\d{4})"
_DATE_PATTERNS = [
    re.compile(r"\b(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})\b"),
    # US order, as in SEC filings and CUAD's answers: M/D/YY or M/D/YYYY
    re.compile(r"\b(?P<month>\d{1,2})/(?P<day>\d{1,2})/(?P<year>\d{2}|\d{4})\b"),
    re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b"),
    re.compile(rf"\b{_DAY}\s+(?:day\s+of\s+)?{_MONTH},?\s+(?:in\s+the\s+year\s+)?{_YEAR}\b"),
    re.compile(rf"\b{_MONTH},?\s+{_YEAR}\b"),
    re.compile(r"(?:\[\s*\]|_+|x+)/(?:\[\s*\]|_+|x+)/(?P<year>\d{4})\b"),  # redacted: [ ]/[ ]/2020
]


def _year(raw: str) -> int:
    year = int(raw)
    if len(raw) == 2:  # CUAD writes 4/6/99 and 6/1/20
        year += 2000 if year < 50 else 1900
    return year


def parse_date(text: str | None) -> PartialDate | None:
    """The first date in the text (the earliest-starting match of any pattern), or None."""
    if not text:
        return None
    folded = fold(text)
    best: tuple[int, PartialDate] | None = None
    for pattern in _DATE_PATTERNS:
        for m in pattern.finditer(folded):
            found = _date_of(m.groupdict())
            if found is None:
                continue
            if best is None or m.start() < best[0]:
                best = (m.start(), found)
            break
    return best[1] if best else None


def parse_dates(text: str | None) -> list[PartialDate]:
    """Every date in the text, in order; where patterns overlap, the one that starts first and reads most."""
    if not text:
        return []
    folded = fold(text)
    found: list[tuple[int, int, PartialDate]] = []
    for pattern in _DATE_PATTERNS:
        for m in pattern.finditer(folded):
            date = _date_of(m.groupdict())
            if date is not None:
                found.append((m.start(), -len(m.group(0)), date))
    out: list[PartialDate] = []
    end = -1
    for start, negative_length, date in sorted(found, key=lambda item: (item[0], item[1])):
        if start >= end:
            out.append(date)
            end = start - negative_length
    return out


def _date_of(groups: dict[str, str | None]) -> PartialDate | None:
    month_raw = groups.get("month")
    month = None
    if month_raw:
        month = int(month_raw) if month_raw.isdigit() else MONTHS[month_raw.rstrip(".")]
    day_raw = groups.get("day")
    day = int(day_raw) if day_raw else None
    if (month is not None and not 1 <= month <= 12) or (day is not None and not 1 <= day <= 31):
        return None
    return PartialDate(_year(str(groups["year"])), month, day)


# ---- durations ----------------------------------------------------------------------------------

NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "eighteen": 18,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "forty-five": 45,
    "fifty": 50,
    "sixty": 60,
    "ninety": 90,
    "a": 1,
    "an": 1,
}
_NUMBER = r"(?P<n>\d+|" + "|".join(sorted((re.escape(w) for w in NUMBER_WORDS), key=len, reverse=True)) + ")"
_DURATION = re.compile(
    rf"\b{_NUMBER}\s*(?:\(\s*\d+\s*\)\s*)?(?:-\s*)?(?:calendar\s+|business\s+|consecutive\s+|successive\s+)?"
    r"(?P<unit>day|week|month|year)s?\b"
)
_ENDLESS = re.compile(r"\b(perpetual|perpetuity|indefinite(?:ly)?|evergreen)\b")


@dataclass(frozen=True)
class Duration:
    """A length of time in a canonical unit: weeks become days, years become months (30 days stays apart
    from one month: contracts mean different things by them)."""

    amount: int
    unit: str  # "day" | "month" | "endless"

    def __str__(self) -> str:
        return "perpetual" if self.unit == "endless" else f"{self.amount} {self.unit}{'s' if self.amount != 1 else ''}"


def parse_durations(text: str | None) -> list[Duration]:
    """Every duration in the text, in order ("one (1) month", "30 days", "perpetual")."""
    if not text:
        return []
    folded = fold(text)
    found: list[tuple[int, Duration]] = []
    for m in _DURATION.finditer(folded):
        raw, unit = m.group("n"), m.group("unit")
        amount = int(raw) if raw.isdigit() else NUMBER_WORDS[raw]
        if unit == "week":
            amount, unit = amount * 7, "day"
        elif unit == "year":
            amount, unit = amount * 12, "month"
        found.append((m.start(), Duration(amount, unit)))
    found.extend((m.start(), Duration(0, "endless")) for m in _ENDLESS.finditer(folded))
    return [d for _, d in sorted(found, key=lambda pair: pair[0])]


# ---- jurisdictions ------------------------------------------------------------------------------

_ONE_WORD_STATES = (
    "Alabama Alaska Arizona Arkansas California Colorado Connecticut Delaware Florida Georgia Hawaii Idaho Illinois "
    "Indiana Iowa Kansas Kentucky Louisiana Maine Maryland Massachusetts Michigan Minnesota Mississippi Missouri "
    "Montana Nebraska Nevada Ohio Oklahoma Oregon Pennsylvania Tennessee Texas Utah Vermont Virginia Washington "
    "Wisconsin Wyoming"
)
US_STATES = [
    *_ONE_WORD_STATES.split(),
    "New Hampshire",
    "New Jersey",
    "New Mexico",
    "New York",
    "North Carolina",
    "North Dakota",
    "Rhode Island",
    "South Carolina",
    "South Dakota",
    "West Virginia",
    "District of Columbia",
]
OTHER_JURISDICTIONS = [
    "England and Wales",
    "England",
    "Scotland",
    "Ireland",
    "United Kingdom",
    "Canada",
    "Ontario",
    "British Columbia",
    "Quebec",
    "Alberta",
    "Germany",
    "France",
    "Switzerland",
    "Netherlands",
    "Sweden",
    "Israel",
    "Singapore",
    "Hong Kong",
    "China",
    "Japan",
    "Korea",
    "India",
    "Australia",
    "New South Wales",
    "Victoria",
    "Bermuda",
    "Cayman Islands",
    "Luxembourg",
    "United States",
]
JURISDICTION_ALIASES = {
    "n.y.": "New York",
    "nyc": "New York",
    "calif.": "California",
    "d.c.": "District of Columbia",
    "washington, d.c.": "District of Columbia",
    "uk": "United Kingdom",
    "u.k.": "United Kingdom",
    "england & wales": "England and Wales",
    "usa": "United States",
    "u.s.": "United States",
    "federal law": "United States",
}
_JURISDICTION_NAMES = {fold(name): name for name in [*US_STATES, *OTHER_JURISDICTIONS]} | {
    fold(alias): name for alias, name in JURISDICTION_ALIASES.items()
}
_JURISDICTION = re.compile(
    r"(?<![\w.])(" + "|".join(re.escape(k) for k in sorted(_JURISDICTION_NAMES, key=len, reverse=True)) + r")(?![\w])"
)


def parse_jurisdictions(text: str | None) -> list[str]:
    """Jurisdictions named in the text, longest name first at each place ("West Virginia" is not "Virginia";
    "New York" is one). "the laws of the State of New York" -> ["New York"]."""
    if not text:
        return []
    seen: list[str] = []
    for m in _JURISDICTION.finditer(fold(text)):
        name = _JURISDICTION_NAMES[m.group(1)]
        if name not in seen:
            seen.append(name)
    return seen


# ---- names --------------------------------------------------------------------------------------

_LEGAL_FORMS = "inc incorporated corp corporation co company ltd limited llc lc llp lp plc gmbh ag sa nv bv kg srl"
COMPANY_WORDS = frozenset([*_LEGAL_FORMS.split(), "spa", "pte", "pty", "the"])
_PARENS = re.compile(r"\([^)]*\)|\[[^\]]*\]")


def name_key(name: str) -> str:
    """A name in the form names are compared in: no defined terms in brackets, no legal-form words,
    "Last, First" turned round for people. ``ACME, Inc. ("Seller")`` -> ``acme``."""
    text = _PARENS.sub(" ", fold(name)).replace("&", " and ")
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 2 and all(parts) and not set(plain(parts[1]).split()) & COMPANY_WORDS:
        text = f"{parts[1]} {parts[0]}"  # "Antons, Jan-Niklas" -> "Jan-Niklas Antons"
    words = [w for w in plain(text).split() if w not in COMPANY_WORDS]
    return " ".join(words)


def names_match(a: str, b: str, threshold: float = 88.0) -> bool:
    """Same person or organisation: equal keys, near-equal keys (spelling, a missing space as in
    "StefanSchoenmackers"), or one key's words all within the other's ("Sphere 3D" / "Sphere 3D Corp")."""
    ka, kb = name_key(a), name_key(b)
    if not ka or not kb:
        return False
    if ka == kb or ka.replace(" ", "") == kb.replace(" ", ""):
        return True
    if fuzz.token_sort_ratio(ka, kb) >= threshold or fuzz.ratio(ka.replace(" ", ""), kb.replace(" ", "")) >= threshold:
        return True
    short, long_ = sorted((ka.split(), kb.split()), key=len)
    return len(short) >= 1 and max(map(len, short)) >= 3 and set(short) <= set(long_)


def texts_match(a: str, b: str, threshold: float = 90.0) -> bool:
    """Free text (a title): equal after ``plain``, or within a small edit distance."""
    pa, pb = plain(a), plain(b)
    return bool(pa and pb) and (pa == pb or fuzz.ratio(pa, pb) >= threshold)


def passage_matches(prediction: str, passage: str, threshold: float = 90.0, min_chars: int = 30) -> bool:
    """A prediction that is a piece of a long labelled passage (an abstract): the schema caps values at
    200 characters, so the prediction must be found inside the passage, not equal to it."""
    pp, pl = plain(prediction), plain(passage)
    if len(pp) < min(min_chars, len(pl)) or not pl:
        return False
    return pp in pl or fuzz.partial_ratio(pp, pl) >= threshold
