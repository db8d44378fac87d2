"""Many small files: reading and measuring N one-page PDFs, a fresh reader process per file vs a reused pool.

Old path: ``batch.prepare_parallel`` as of commit 8a49701 (before the reader pool): two spawned worker
processes, each reading a file through ``load_pdf_isolated`` (a fresh Python reader process per file, PyMuPDF
imported anew) and counting its tokens in the worker. New path: this tree's ``batch.prepare_parallel``: two
reader processes reused for every file, each reading and counting in place. Both yield what the engine needs
(the Prepared documents); the engine is left out (its cost is the same on both). The old code is taken from git
(``git archive``) into a temporary folder; each path runs in its own Python process, timed from its first
file to its last, alternately, ``--repeats`` times. The script prints every run, the medians and their ratio,
and when the first document was ready (the new batch starts its engine then; the old one only after reading
every file).

    .venv/bin/python bench/small_files_bench.py --files 200 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OLD_COMMIT = "8a49701"  # the last commit whose batch started a reader process per file
# Run in a child Python whose sys.path starts with the tree being measured.
_MEASURE = """
import json, sys, time
from pathlib import Path
from docanalyst.batch import prepare_parallel
from docanalyst.config import Settings
from docanalyst.errors import DocanalystError
from docanalyst.pipeline import ExtractOptions
paths = sorted(Path(sys.argv[1]).glob("*.pdf"))
started = time.perf_counter()
first, tokens = 0.0, 0
for _, result in prepare_parallel(Settings.from_env(), paths, ExtractOptions(profile="embedded", template="generic"),
                                  int(sys.argv[2]), timeout_s=360):
    if isinstance(result, DocanalystError):
        raise result
    first = first or time.perf_counter() - started
    tokens += result.budget.prompt_tokens
print(json.dumps({"wall": time.perf_counter() - started, "first": first, "tokens": tokens}))
"""


def one_page_pdf(path: Path, number: int) -> None:
    """A one-page text PDF (about 1,200 characters), different for every file so none is a copy."""
    lines = b"".join(
        b"(Invoice %05d, line %02d: the supplier delivers the goods within thirty days.) '\n" % (number, i)
        for i in range(15)
    )
    stream = zlib.compress(b"BT /F1 10 Tf 12 TL 50 750 Td\n" + lines + b"ET")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for index, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % index + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


def measure(tree: Path, folder: Path, workers: int) -> tuple[float, float, int]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(folder), str(workers)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["wall"], out["first"], out["tokens"]


def old_tree(into: Path) -> Path:
    """The old code (docanalyst and prompts) exported from git, untouched by the working tree."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", OLD_COMMIT, "docanalyst", "prompts"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tree", type=Path, default=ROOT, help="A copy of this tree to measure (default: it).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="small-files-") as tmp:
        folder, old = Path(tmp) / "pdfs", old_tree(Path(tmp))
        folder.mkdir()
        for number in range(args.files):
            one_page_pdf(folder / f"invoice-{number:05d}.pdf", number)
        runs: dict[str, list[tuple[float, float, int]]] = {"old": [], "new": []}
        for repeat in range(args.repeats):
            for name, tree in (("old", old), ("new", args.new_tree)):
                result = measure(tree, folder, args.workers)
                runs[name].append(result)
                print(f"run {repeat + 1} {name}: {result[0]:7.1f} s for {args.files} files "
                      f"({args.files / result[0]:5.2f} files/s), first ready after {result[1]:.1f} s, "
                      f"{result[2]:,} prompt tokens", flush=True)  # fmt: skip
    if {r[2] for r in runs["old"]} != {r[2] for r in runs["new"]}:  # the prompts changed since OLD_COMMIT
        print("note: the two trees' prompts differ, so their token totals do too", file=sys.stderr)
    old, new = (statistics.median(r[0] for r in runs[k]) for k in ("old", "new"))
    old_first, new_first = (statistics.median(r[1] for r in runs[k]) for k in ("old", "new"))
    print(f"median old {old:.1f} s, new {new:.1f} s: new path {old / new:.2f}x faster ({args.workers} workers)")
    print(f"median first document ready: old {old_first:.1f} s, new {new_first:.1f} s; the old batch started its "
          f"engine after reading all (~{old:.0f} s), the new one after the first ({new_first:.1f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
