"""The first run on a laptop, before and after, measured in one run on this machine.

Runs the real CLI (`docanalyst extract --json`) in fresh processes, so engine start is included, for:
  before   the code at --old-ref (default: the last commit before the first-run work), from a `git archive`
  after    this checkout, with its defaults
  noguard  this checkout with --no-repetition-guard (what the guard changes; documents, not the demo)
Two jobs per variant: the demo (the 2-page sample, timed --repeats times, alternating variants) and a set of
documents (the samples and corpus contracts that fit the embedded window) for output tokens and statuses.
Prints medians and ratios; writes everything to --out as JSON. Nothing here is asserted: figures go to
docs/BENCHMARKS.md.

    .venv/bin/python bench/first_run_bench.py --repeats 3 --out bench/results/first-run-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "samples" / "northwind-bluefin-services-agreement.pdf"
CUAD = ROOT.parent / "shared" / "corpus" / "contracts" / "cuad" / "pdf"
DOCUMENTS = [
    DEMO,
    ROOT / "samples" / "cuad-centrack-web-hosting-agreement.pdf",
    ROOT / "samples" / "cuad-sphere3d-consulting-agreement.pdf",
    CUAD / "EcoScienceSolutionsInc_20171117_8-K_EX-10.1_10956472_EX-10.1_Endorsement Agreement.pdf",
]


def old_checkout(ref: str, dest: Path) -> Path:
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    tar_path = dest / "old.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest / "old", filter="data")
    return dest / "old"


def run(variant: str, files: list[Path], old: Path, db: Path) -> dict[str, Any]:
    """One CLI process: wall time and each document's JSON line."""
    env = dict(os.environ)
    command = [sys.executable, "-m", "docanalyst.cli", "extract", *map(str, files), "--template", "contract"]
    command += ["--json", "--force", "--db", f"sqlite:///{db}"]
    if variant == "before":
        env["PYTHONPATH"] = str(old)  # the old package shadows the editable install
    if variant == "noguard":
        command.append("--no-repetition-guard")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=old if variant == "before" else ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {"variant": variant, "rc": done.returncode, "wall_s": round(wall, 2), "documents": lines}


def demo_row(result: dict[str, Any]) -> dict[str, Any]:
    doc = result["documents"][0] if result["documents"] else {}
    timings, usage = doc.get("timings") or {}, doc.get("usage") or {}
    return {
        "variant": result["variant"],
        "rc": result["rc"],
        "status": doc.get("status"),
        "wall_s": result["wall_s"],
        "engine_start_s": timings.get("engine_start_s"),
        "read_tokenize_s": round(timings.get("read_s", 0) + timings.get("tokenize_s", 0), 2),
        "ttft_s": timings.get("ttft_s"),
        "generate_s": timings.get("generate_s_1"),
        "output_tokens": usage.get("completion_tokens"),
    }


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if isinstance(r.get(key), int | float)]
    return round(statistics.median(values), 2) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-ref", default="7a9572c")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="docanalyst-first-run-") as tmp:
        work = Path(tmp)
        old = old_checkout(args.old_ref, work)
        demo: list[dict[str, Any]] = []
        for i in range(args.repeats):
            for variant in ("before", "after"):
                row = demo_row(run(variant, [DEMO], old, work / f"demo-{variant}-{i}.db"))
                demo.append(row)
                print(json.dumps(row), flush=True)
        files = [p for p in DOCUMENTS if p.exists()]
        documents = {v: run(v, files, old, work / f"docs-{v}.db") for v in ("before", "after", "noguard")}
    summary = {
        v: {k: median([r for r in demo if r["variant"] == v], k) for k in ("wall_s", "engine_start_s", "generate_s")}
        for v in ("before", "after")
    }
    print("\ndemo medians:", json.dumps(summary))
    b, a = summary["before"], summary["after"]
    if b["wall_s"] and a["wall_s"]:
        print(f"demo wall time before/after: {b['wall_s'] / a['wall_s']:.2f}x")
    print("\nper document (status, output tokens):")
    for index, path in enumerate(files):
        cells = []
        for v, result in documents.items():
            doc = result["documents"][index] if index < len(result["documents"]) else {}
            cells.append(f"{v}: {doc.get('status')} {(doc.get('usage') or {}).get('completion_tokens')}")
        print(f"  {path.name[:50]:50}  " + " | ".join(cells))
    after, noguard = documents["after"]["documents"], documents["noguard"]["documents"]
    same = sum(1 for x, y in zip(after, noguard, strict=False) if x.get("result") == y.get("result"))
    print(f"guard on vs off: {same} of {len(after)} documents have identical results")
    if args.out:
        payload = {"demo": demo, "summary": summary, "documents": documents, "files": [p.name for p in files]}
        args.out.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", "utf-8")


if __name__ == "__main__":
    main()
