#!/usr/bin/env python3
"""The real command, end to end, on a warm engine (issue 15): where the seconds of `docanalyst extract` go.

Two steps, because the GPU host has no corpus and no network:

``prepare`` (here, beside ../shared): writes the documents into a folder that travels to the GPU host:
    book.pdf           the 467-page book (../shared/corpus/long/The-Art-of-Public-Speaking.pdf)
    book-32k.pdf       its first pages, ~32K tokens of text (the model's own tokenizer, bench/assets)
    book-128k.pdf      its first pages, ~128K tokens
    bundle-250k.pdf    corpus contracts one after another until ~250K tokens (a synthetic contract bundle)

``run`` (on the GPU host, a `docanalyst serve` up): one subprocess per case, the real CLI with ``--json``, a
fresh database each, and the server's prefix cache emptied before each case (``POST /reset_prefix_cache``; the
server needs ``VLLM_SERVER_DEV_MODE=1``) so that no case profits from the one before. Each case prints and
appends one JSON line: the command's wall time and its own breakdown (read, tokenize, first token, decode,
ground and store) and usage (prompt, cached and output tokens, per field group when it has groups).

Case spec: ``DOC:KEY=VALUE,...`` with keys ``groups`` (``--field-groups``), ``evidence`` (``--evidence``),
``template`` (``--template``), ``code`` (a folder holding another checkout of docanalyst, the command's working
folder: today's path is the commit before issue 15, with its one-process reader), ``tables`` (``off`` adds
``--no-tables``), ``ask`` (N questions through ``docanalyst ask``: the first fills the cache, the rest are the
follow-ups). Example:

    python bench/e2e_gpu.py run --docs DIR --engine http://127.0.0.1:8008 --model "qwen-fp8 [load_format=dummy]" \
        --out $OUT/e2e.jsonl --case book.pdf:groups=1,evidence=quotes,read=serial --case book.pdf
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
BOOK = CORPUS / "long" / "The-Art-of-Public-Speaking.pdf"
CLI = (sys.executable, "-m", "docanalyst.cli")  # the console script, also where only PYTHONPATH finds docanalyst
QUESTIONS = (
    "What does the book say about stage fright?",
    "Which speakers does the book quote on delivery?",
    "How should a speaker prepare an outline?",
    "What advice is given about gestures?",
)


def _tokenizer() -> Any:
    """The Qwen3-Next tokenizer from bench/assets (the counts the engine will see)."""
    import gzip

    from tokenizers import Tokenizer

    return Tokenizer.from_str(gzip.decompress((REPO / "bench/assets/tokenizer.json.gz").read_bytes()).decode())


def _page_tokens(path: Path, tokenizer: Any) -> list[int]:
    import pymupdf

    with pymupdf.open(path) as doc:
        return [len(tokenizer.encode(page.get_text()).ids) for page in doc]


def _first_pages(src: Path, dest: Path, target: int, tokenizer: Any) -> int:
    """Write the first pages of ``src`` that hold about ``target`` tokens; returns their token count."""
    import pymupdf

    counts, total, last = _page_tokens(src, tokenizer), 0, 0
    for last, count in enumerate(counts):  # noqa: B007
        total += count
        if total >= target:
            break
    with pymupdf.open(src) as doc, pymupdf.open() as out:
        out.insert_pdf(doc, from_page=0, to_page=last)
        out.save(dest)
    return total


def _bundle(dest: Path, target: int, tokenizer: Any) -> tuple[int, int]:
    """Corpus contracts one after another (again from the first when all are in) until ``target`` tokens;
    returns (tokens, files)."""
    import pymupdf

    files = sorted((CORPUS / "contracts").rglob("*.pdf"))
    total, used = 0, 0
    with pymupdf.open() as out:
        for path in files * 8:  # the corpus holds ~85K tokens of contract text: the bundle repeats it
            try:
                with pymupdf.open(path) as doc:
                    if doc.needs_pass or not doc.page_count:
                        continue
                    tokens = sum(len(tokenizer.encode(p.get_text()).ids) for p in doc)
                    if tokens < 500:
                        continue  # a scan: no text layer
                    out.insert_pdf(doc)
            except Exception:
                continue
            total, used = total + tokens, used + 1
            if total >= target:
                break
        out.save(dest, garbage=3, deflate=True)
    return total, used


def prepare(args: argparse.Namespace) -> None:
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    shutil.copy(BOOK, docs / "book.pdf")
    made = {"book.pdf": sum(_page_tokens(BOOK, tokenizer))}
    for size, name in ((32_000, "book-32k.pdf"), (128_000, "book-128k.pdf")):
        made[name] = _first_pages(BOOK, docs / name, size, tokenizer)
    tokens, files = _bundle(docs / "bundle-250k.pdf", 250_000, tokenizer)
    made["bundle-250k.pdf"] = tokens
    for name, count in made.items():
        size_mb = (docs / name).stat().st_size / 1e6
        print(
            f"{name}: ~{count:,} text tokens, {size_mb:.1f} MB" + (f", {files} contracts" if "bundle" in name else "")
        )


def _case(spec: str) -> tuple[str, dict[str, str]]:
    doc, _, rest = spec.partition(":")
    options = dict(part.split("=", 1) for part in rest.split(",") if part)
    return doc, options


def _command(args: argparse.Namespace, doc: Path, options: dict[str, str], db: Path) -> list[str]:
    engine = ["--engine", args.engine, "--model", args.model, "--db", f"sqlite:///{db}", "--json", "--force"]
    flags: list[str] = []
    if "groups" in options:
        flags += ["--field-groups", options["groups"]]
    if "template" in options:
        flags += ["--template", options["template"]]
    if "evidence" in options:
        flags += ["--evidence", options["evidence"]]
    if options.get("tables") == "off":
        flags.append("--no-tables")
    if "ask" in options:
        asked = QUESTIONS[: int(options["ask"])]
        questions = [part for q in asked[1:] for part in ("-q", q)]
        return [*CLI, "ask", str(doc), asked[0], *questions, *engine, *flags]
    return [*CLI, "extract", str(doc), *engine, *flags]


def _reset_cache(url: str) -> bool:
    base = url.rstrip("/").removesuffix("/v1")
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{base}/reset_prefix_cache", method="POST"), timeout=30):
            return True
    except OSError:
        return False


def _parse(stdout: str) -> Any:
    """extract --json prints one object; ask --json one object per line (one per question)."""
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        try:
            return [json.loads(line) for line in lines]
        except json.JSONDecodeError:
            return []


def _breakdown(out: Any) -> list[dict[str, Any]]:
    """One row per answer in the command's --json output (extract: one; ask: one per question)."""
    items = out if isinstance(out, list) else out.get("answers", [out]) if isinstance(out, dict) else []
    rows = []
    for item in items:
        timings, usage = item.get("timings", {}), item.get("usage", {})
        generate = sum(v for k, v in timings.items() if k.startswith("generate_s"))
        # a grouped run's one-token prefill request comes before its parts' generate
        known = sum(timings.get(k) or 0.0 for k in ("read_s", "tokenize_s", "engine_start_s", "prefill_s")) + generate
        rows.append(
            {
                "status": item.get("status"),
                "read_s": timings.get("read_s"),
                "tokenize_s": timings.get("tokenize_s"),
                "ttft_s": timings.get("ttft_s"),
                "prefill_s": timings.get("prefill_s"),
                "generate_s": round(generate, 3),
                "decode_s": round(generate - (0.0 if timings.get("prefill_s") else timings.get("ttft_s") or 0.0), 3),
                "ground_store_s": round(max(timings.get("total_s", 0.0) - known, 0.0), 3),
                "total_s": timings.get("total_s"),
                "usage": usage,
            }
        )
    return rows


def run(args: argparse.Namespace) -> None:
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    for spec in args.case:
        doc, options = _case(spec)
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ)
            # another checkout of docanalyst (today's path: the commit before issue 15); `python -m` puts the
            # working folder first on sys.path, so the command runs there
            cwd = Path(options["code"]).resolve() if "code" in options else REPO
            reset = _reset_cache(args.engine)
            command = _command(args, Path(args.docs).resolve() / doc, options, Path(tmp) / "bench.db")
            started = time.perf_counter()
            proc = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=args.timeout)
            wall = time.perf_counter() - started
        rows = _breakdown(_parse(proc.stdout))
        record = {"case": spec, "exit": proc.returncode, "wall_s": round(wall, 3), "cache_reset": reset,
                  "answers": rows, "stderr_tail": proc.stderr[-600:] if proc.returncode else ""}  # fmt: skip
        with out_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    prep = sub.add_parser("prepare", help="write the documents into DOCS")
    prep.add_argument("--docs", required=True)
    go = sub.add_parser("run", help="run the cases against a warm server")
    go.add_argument("--docs", required=True)
    go.add_argument("--engine", default="http://127.0.0.1:8008")
    go.add_argument("--model", required=True, help="the model name the server serves")
    go.add_argument("--case", action="append", required=True)
    go.add_argument("--out", required=True)
    go.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    prepare(args) if args.step == "prepare" else run(args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
