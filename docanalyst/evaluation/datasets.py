"""Labelled datasets: CUAD (master_clauses.csv + PDFs), the papers' ground truth (JSON), or a user's folder
of PDFs with a labels.csv / labels.jsonl.

Every case carries its labels per template field and the labels it will *not* score, with the reason
(a redacted date, a garbled answer, a known CUAD error): bad labels are reported, never silently counted.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz

from docanalyst.errors import ConfigError
from docanalyst.evaluation.normalize import fold, parse_date, parse_durations
from docanalyst.templates import get_template

csv.field_size_limit(1 << 30)  # CUAD's clause columns hold whole clauses


@dataclass(frozen=True)
class Expected:
    """A field's label. ``values`` empty: the label says the document does not have it. ``aliases``: other
    names the same things go by (CUAD's defined terms: "Customer", "i-on")."""

    values: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalCase:
    name: str
    pdf: Path
    labels: Mapping[str, Expected]
    excluded: Mapping[str, str] = field(default_factory=dict)  # field -> why its label is not scored
    note: str | None = None


@dataclass(frozen=True)
class Dataset:
    name: str
    template: str
    source: Path
    cases: tuple[EvalCase, ...]
    notes: tuple[str, ...] = ()

    def limited(self, limit: int | None) -> Dataset:
        if limit is None or limit >= len(self.cases):
            return self
        return Dataset(self.name, self.template, self.source, self.cases[:limit], self.notes)


def _smallest_first(cases: Iterable[EvalCase]) -> tuple[EvalCase, ...]:
    """``--limit N`` takes the N smallest files: the quick run is also the one most likely to fit a window."""
    return tuple(sorted(cases, key=lambda c: (c.pdf.stat().st_size, c.name)))


# ---- CUAD ---------------------------------------------------------------------------------------

CUAD_CATEGORIES = {
    "parties": "Parties",
    "agreement_date": "Agreement Date",
    "effective_date": "Effective Date",
    "expiration_date": "Expiration Date",
    "renewal": "Renewal Term",
    "notice_period": "Notice Period To Terminate Renewal",
    "governing_law": "Governing Law",
    "liability_cap": "Cap On Liability",
}
# Faults a check cannot see; see ../shared/corpus/README.md.
CUAD_KNOWN_FAULTS = {
    ("LIMEENERGYCO_09_09_1999", "agreement_date"): "CUAD answers 7/7/99, but its labelled text says "
    "'7th day of September, 1999'",
}
CUAD_NOTES = (
    "CUAD answers write dates as M/D/YY; they are read in US order.",
    "CUAD's 'Notice Period To Terminate Renewal' is the notice to stop a renewal; the contract template's "
    "notice_period is any notice period, so a correct termination-notice answer can count as wrong.",
    "CUAD's 'Cap On Liability' is a Yes/No label: liability_cap is scored on presence only.",
    "CUAD's 'Parties' answers list defined terms in brackets; those become aliases, and collective entries "
    "('Shipper and Transporter (collectively the Parties)') are dropped.",
)


def _file_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", fold(Path(name).stem))


def _header(name: str) -> str:
    return re.sub(r"\s*-\s*", "-", name.strip())  # "Notice Period To Terminate Renewal- Answer"


def cuad_parties(answer: str) -> Expected:
    """``Centrack International Inc. ("Customer"); i-on interactive Inc. ("i-on")`` -> two parties, their
    defined terms as aliases."""
    values: list[str] = []
    aliases: list[str] = []
    for entry in answer.split(";"):
        terms = re.findall(r"[\"“”]([^\"“”]+)[\"“”]", entry)
        name = re.sub(r"\([^)]*\)", " ", entry).strip(" ,.\t")
        name = re.sub(r"\s+", " ", name)
        collective = bool(re.search(r"collectively|individually", entry, re.I)) and " and " in name.lower()
        if terms and not collective:
            aliases.extend(t.strip() for t in terms if t.strip().lower() not in ("party", "parties"))
        if name and not collective:
            values.append(name)
    return Expected(tuple(values), tuple(aliases))


def _label_problem(field_name: str, answer: str) -> str | None:
    """Labels no extractor can match, found by looking at them."""
    if "[]" in answer.replace(" ", ""):
        return f"redacted in the filing ({answer})"
    if (
        field_name.endswith("_date")
        and parse_date(answer) is None
        and not any(d.unit == "endless" for d in parse_durations(answer))
    ):
        return f"not a date ({answer})"
    if re.search(r"\b\d+\s+\d+\s+(?:day|week|month|year)", answer):
        return f"garbled answer ({answer})"
    return None


def load_cuad(root: Path) -> Dataset:
    """CUAD as the Atticus Project ships it: ``master_clauses.csv`` and the PDFs (anywhere below ``root``)."""
    csv_path = root if root.is_file() else root / "master_clauses.csv"
    folder = csv_path.parent
    if not csv_path.exists():
        raise ConfigError("not a CUAD folder: master_clauses.csv is missing", path=root)
    pdfs = {_file_key(p.name): p for p in sorted(folder.rglob("*")) if p.suffix.lower() == ".pdf"}
    if not pdfs:
        raise ConfigError("no PDFs beside master_clauses.csv (looked in every sub-folder)", path=folder)
    with csv_path.open(newline="", encoding="utf-8") as fh:
        rows = [{_header(k): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(fh)]
    by_key = {_file_key(row["Filename"]): row for row in rows}
    cases: list[EvalCase] = []
    unmatched: list[str] = []
    for key, pdf in pdfs.items():
        row = by_key.get(key)
        if row is None:  # CSV names that differ from the PDF's (MOELIS&CO, PACIRA): nearest name, if close
            best = max(by_key, key=lambda k: fuzz.ratio(k, key))
            row = by_key[best] if fuzz.ratio(best, key) >= 90 else None
        if row is None:
            unmatched.append(pdf.name)
            continue
        cases.append(_cuad_case(pdf, row))
    notes = list(CUAD_NOTES)
    notes.append(f"{len(cases)} of the {len(rows)} labelled contracts have their PDF in {folder}.")
    if unmatched:
        notes.append(f"PDFs without a CSV row (not evaluated): {', '.join(unmatched)}")
    return Dataset("cuad", "contract", csv_path, _smallest_first(cases), tuple(notes))


def _cuad_case(pdf: Path, row: Mapping[str, str]) -> EvalCase:
    labels: dict[str, Expected] = {}
    excluded: dict[str, str] = {}
    for field_name, category in CUAD_CATEGORIES.items():
        answer = row.get(f"{category}-Answer", "")
        known = next((why for (prefix, f), why in CUAD_KNOWN_FAULTS.items() if f == field_name and
                      row["Filename"].startswith(prefix)), None)  # fmt: skip
        problem = known or (_label_problem(field_name, answer) if answer and field_name != "parties" else None)
        if problem:
            excluded[field_name] = problem
            continue
        if field_name == "parties":
            labels[field_name] = cuad_parties(answer)
        elif field_name == "liability_cap":
            labels[field_name] = Expected(("yes",) if answer.lower() == "yes" else ())
        else:
            labels[field_name] = Expected((answer,) if answer else ())
    return EvalCase(pdf.name, pdf, labels, excluded)


# ---- papers -------------------------------------------------------------------------------------

PAPER_NOTES = (
    "Entries whose gt_source says 'transcribed' were copied from the PDF's first page by a helper: "
    "not independent ground truth.",
    "An empty abstract in the ground truth means 'not labelled' (the upstream label file has none), not "
    "'no abstract': it is not scored.",
    "abstract values are capped at 200 characters by the schema: a prediction counts as right when it is a "
    "piece of the labelled abstract.",
)


def load_papers(path: Path) -> Dataset:
    """``ground_truth_papers.json``: title, authors, abstract per PDF (PDF paths relative to the JSON)."""
    try:
        entries = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the papers' ground truth: {exc}", path=path) from exc
    cases: list[EvalCase] = []
    for entry in entries:
        pdf = path.parent / entry["pdf"]
        if not pdf.exists():
            continue
        labels: dict[str, Expected] = {}
        if entry.get("title"):
            labels["title"] = Expected((entry["title"],))
        if entry.get("authors"):
            labels["authors"] = Expected(tuple(entry["authors"]))
        excluded = {}
        if entry.get("abstract"):
            labels["abstract"] = Expected((entry["abstract"],))
        else:
            excluded["abstract"] = "not labelled in the ground truth"
        source = str(entry.get("gt_source", ""))
        note = "transcribed, not independent" if "transcribed" in source else None
        cases.append(EvalCase(entry["pdf"], pdf, labels, excluded, note))
    if not cases:
        raise ConfigError("no paper PDF of the ground truth was found beside it", path=path)
    return Dataset("papers", "paper", path, _smallest_first(cases), PAPER_NOTES)


# ---- a user's own -------------------------------------------------------------------------------

LABEL_FILES = ("labels.jsonl", "labels.json", "labels.csv")
FILE_COLUMNS = ("file", "pdf", "path", "filename")
NOT_LABELLED = "?"


def _split_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(str(v).strip() for v in value if v is not None and str(v).strip())
    return tuple(part.strip() for part in str(value).split(";") if part.strip())


def load_custom(folder: Path, labels_path: Path | None, template: str) -> Dataset:
    """A folder of PDFs and a labels file: one row per PDF, a ``file`` column and one column per template
    field. Empty means "the document does not have it"; ``?`` or a missing column means "not labelled".
    List fields (parties, authors) take ``;``-separated values in CSV, JSON lists in JSONL. ``template`` is a
    built-in's name, a user template's name (DOCANALYST_HOME/templates) or its file."""
    declared = get_template(template)
    specs = declared.field_specs
    labels_path = labels_path or next((folder / n for n in LABEL_FILES if (folder / n).exists()), None)
    if labels_path is None or not labels_path.exists():
        raise ConfigError(f"no labels file: expected one of {', '.join(LABEL_FILES)} or --labels FILE", path=folder)
    rows = _read_rows(labels_path)
    cases: list[EvalCase] = []
    unknown: set[str] = set()
    for i, row in enumerate(rows, start=1):
        file_col = next((c for c in FILE_COLUMNS if row.get(c)), None)
        if file_col is None:
            raise ConfigError(f"row {i} has no 'file' column", path=labels_path)
        pdf = (folder / str(row[file_col])).resolve()
        if not pdf.exists():
            raise ConfigError(f"row {i}: {row[file_col]} does not exist in {folder}", path=labels_path)
        labels: dict[str, Expected] = {}
        for key, value in row.items():
            if key in FILE_COLUMNS:
                continue
            spec = specs.get(key)
            if spec is None:
                unknown.add(key)
                continue
            if isinstance(value, str) and value.strip() == NOT_LABELLED:
                continue
            values = _split_list(value) if spec.many else _split_list([value] if value is not None else None)
            if spec.kind == "presence":
                values = ("yes",) if values and values[0].lower() in ("yes", "true", "1") else ()
            labels[key] = Expected(values)
        cases.append(EvalCase(str(row[file_col]), pdf, labels))
    if not cases:
        raise ConfigError("the labels file has no rows", path=labels_path)
    notes = (
        f"columns that are not fields of the '{declared.name}' template were ignored: {', '.join(sorted(unknown))}",
    )
    return Dataset(folder.name, template, labels_path, _smallest_first(cases), notes if unknown else ())


def _read_rows(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text("utf-8")
        if path.suffix == ".csv":
            return [dict(r) for r in csv.DictReader(text.splitlines())]
        if path.suffix == ".json":
            data = json.loads(text)
            return [dict(r) for r in (data if isinstance(data, list) else [data])]
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the labels: {exc}", path=path) from exc


# ---- by name ------------------------------------------------------------------------------------


def resolve(dataset: str, corpus: Path | None, labels: Path | None = None, template: str | None = None) -> Dataset:
    """``cuad`` / ``papers`` (from the corpus folder) or a path: a CUAD folder or CSV, a papers JSON, or a
    folder of PDFs with labels."""
    if dataset in ("cuad", "papers"):
        if corpus is None or not corpus.is_dir():
            raise ConfigError(
                f"the '{dataset}' dataset needs the shared corpus: set DOCANALYST_CORPUS to the folder holding "
                "contracts/ and papers/, or pass --dataset PATH"
            )
        if dataset == "cuad":
            return load_cuad(corpus / "contracts" / "cuad")
        return load_papers(corpus / "papers" / "ground_truth_papers.json")
    path = Path(dataset).expanduser()
    if not path.exists():
        raise ConfigError("no such dataset: use cuad, papers or a path", path=path)
    if (path.is_file() and path.suffix == ".csv") or (path.is_dir() and (path / "master_clauses.csv").exists()):
        return load_cuad(path)
    if path.is_file() and path.suffix == ".json":
        return load_papers(path)
    if path.is_dir():
        return load_custom(path, labels, template or "contract")
    raise ConfigError("not a dataset: expected a folder, a CUAD CSV or a papers JSON", path=path)
