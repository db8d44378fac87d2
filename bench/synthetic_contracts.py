"""A folder of synthetic contracts as PDFs, each different, each about N words (issue 16's Ray figures).

    python bench/synthetic_contracts.py OUT_DIR [--count 32] [--words 12000] [--seed 16]

12,000 words come to about 16K tokens with Qwen3-Next's tokenizer. Text only (parties, dates, clauses with
numbers), so reading is fast and the engine's work dominates. Needs PyMuPDF (docanalyst's own dependency).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import pymupdf

PARTIES = [
    "Northwind Traders LLC",
    "Bluefin Analytics Inc.",
    "Harborpeak Holdings Ltd",
    "Quillon Systems GmbH",
    "Orchard Lane Partners LP",
    "Silverline Logistics SA",
    "Cobalt Ridge Energy Corp.",
    "Meridian Health plc",
]
TOPICS = [
    "payment",
    "confidentiality",
    "termination",
    "liability",
    "indemnification",
    "warranty",
    "audit",
    "insurance",
    "data protection",
    "assignment",
    "notices",
    "governing law",
    "force majeure",
    "renewal",
]
VERBS = ["shall", "may", "must not", "will", "agrees to", "undertakes to"]
ACTS = ["deliver the Services", "pay each undisputed invoice", "keep the Confidential Information secret",
        "maintain the insurance described in Schedule B", "give written notice", "provide monthly reports",
        "cure any material breach", "return all materials", "permit an audit of its records"]  # fmt: skip


def sentence(rng: random.Random, parties: tuple[str, str]) -> str:
    who = rng.choice(parties)
    days = rng.choice([5, 10, 15, 30, 45, 60, 90])
    amount = rng.randrange(1_000, 900_000, 250)
    return (f"With respect to {rng.choice(TOPICS)}, {who} {rng.choice(VERBS)} {rng.choice(ACTS)} within {days} days, "
            f"and any amount above USD {amount:,} requires the prior written consent of the other party.")  # fmt: skip


def contract(rng: random.Random, index: int, words: int) -> list[str]:
    parties = tuple(rng.sample(PARTIES, 2))
    head = (f"MASTER SERVICES AGREEMENT No. {index:04d}\nThis Agreement is made on {rng.randint(1, 28)} March "
            f"{rng.randint(2019, 2026)} between {parties[0]} and {parties[1]}.")  # fmt: skip
    text, count, pages, page = [head], len(head.split()), [], []
    clause = 1
    while count < words:
        body = " ".join(sentence(rng, parties) for _ in range(rng.randint(3, 6)))  # type: ignore[arg-type]
        paragraph = f"{clause}. {body}"
        clause += 1
        count += len(paragraph.split())
        page.append(paragraph)
        if sum(len(p.split()) for p in page) > 330:
            pages.append("\n\n".join(page))
            page = []
    pages.append("\n\n".join([*page, f"Signed for {parties[0]} and for {parties[1]}."]))
    pages[0] = text[0] + "\n\n" + pages[0]
    return pages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--words", type=int, default=12000)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.count):
        rng = random.Random(args.seed * 100_003 + i)
        doc = pymupdf.open()
        for text in contract(rng, i, args.words):
            page = doc.new_page()
            page.insert_textbox(pymupdf.Rect(50, 50, 545, 792), text, fontsize=7.5)
        doc.save(args.out / f"contract-{i:02d}.pdf")
        doc.close()
    print(f"{args.count} contracts in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
