"""The cost of Ray on one machine: `docanalyst batch` in-process against `batch --ray` (a local Ray started by the
command, one engine replica), same documents, same machine, alternating, each run on a fresh database (issue 16).

    python bench/ray_bench.py FOLDER [--rounds 2] [--template generic] [--json OUT] [-- extra batch options]

Prints each run's wall time (the whole command: Python start, Ray start, engine start, reading, answers, storing)
and the ratio of the medians, ray / in-process (the issue's goal: at most 1.15 on the CPU). Every run must store
every document; a run that does not is reported and the script exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(folder: Path, template: str, ray: bool, extra: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        db = Path(tmp) / "bench.db"
        cmd = [sys.executable, "-m", "docanalyst.cli", "batch", str(folder), "--template", template, *extra]
        cmd += ["--ray"] if ray else []
        env = {**os.environ, "DOCANALYST_DB": f"sqlite:///{db}", "RAY_AUTH_MODE": "disabled"}
        started = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        con = sqlite3.connect(db)
        try:
            stored = con.execute("select count(distinct document_sha256) from runs").fetchone()[0]
        finally:
            con.close()
    return {"mode": "ray" if ray else "in-process", "wall_s": round(wall, 2), "exit": done.returncode,
            "stored": stored, "tail": done.stderr.strip().splitlines()[-1:]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--template", default="generic")
    parser.add_argument("--json", type=Path)
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    documents = len(list(args.folder.glob("*.pdf")))
    runs = []
    for round_ in range(args.rounds):
        for ray in (False, True) if round_ % 2 == 0 else (True, False):  # alternate who goes first
            run = one_run(args.folder, args.template, ray, extra)
            print(json.dumps(run), flush=True)
            runs.append(run)
    bad = [r for r in runs if r["stored"] != documents]
    median = {m: statistics.median(float(r["wall_s"]) for r in runs if r["mode"] == m) for m in ("in-process", "ray")}
    summary = {
        "documents": documents, "rounds": args.rounds, "median_s": median,
        "ratio_ray_over_in_process": round(median["ray"] / median["in-process"], 3),
        "cpus": os.cpu_count(), "machine": platform.machine(), "when": time.strftime("%Y-%m-%d %H:%M"),
    }  # fmt: skip
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": summary}, indent=1))
    if bad:
        print(f"{len(bad)} run(s) did not store every document: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
