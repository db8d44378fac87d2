"""Page images for the evidence view, drawn in a child process bounded in time and memory.

Why a child: the web server must never parse an uploaded PDF itself (a crashing or looping MuPDF would take the
whole server, every user's session, down). ``render_child.py`` does the drawing; this module only starts it,
kills it at the time limit, and turns any failure into one plain ``DocanalystError``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from docanalyst.errors import DocanalystError

CHILD = Path(__file__).resolve().parent / "render_child.py"
TIMEOUT_S = 30.0
MEMORY_MB = 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def render_page(
    pdf_path: str | Path,
    page_number: int,
    quote: str | None = None,
    password: str | None = None,
    dpi: int = 120,
    crop: bool = True,
    timeout_s: float = TIMEOUT_S,
    memory_mb: int = MEMORY_MB,
    occurrence: int | None = None,
    zoom: float = 1.0,
) -> tuple[bytes, int]:
    """PNG of one page with the quote highlighted (every occurrence, or only the ``occurrence``-th, boxed);
    returns (png bytes, highlights drawn). ``zoom`` > 1 draws the part of the page around the boxed evidence.

    ``crop`` trims the empty margins so the words are legible. The file on disk is never changed. The password
    goes over stdin, never the command line (which other users of the machine can read)."""
    path = str(pdf_path)
    handle, out = tempfile.mkstemp(prefix="docanalyst-page-", suffix=".png")
    os.close(handle)
    request = {"path": path, "page": page_number, "quote": quote, "password": password, "dpi": dpi,
               "crop": crop, "out": out, "memory_mb": memory_mb, "occurrence": occurrence, "zoom": zoom}  # fmt: skip
    try:
        answer = _run_child(request, path, timeout_s)
        if "error" in answer:
            raise DocanalystError(str(answer["error"]), path=path)
        png = Path(out).read_bytes()
    finally:
        Path(out).unlink(missing_ok=True)
    if not png.startswith(PNG_SIGNATURE):
        raise DocanalystError("the page could not be drawn (no image came back)", path=path)
    return png, int(answer.get("hits", 0))


def _run_child(request: dict[str, object], path: str, timeout_s: float) -> dict[str, Any]:
    try:
        done = subprocess.run(
            [sys.executable, str(CHILD)],
            input=json.dumps(request) + "\n",
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed it
        raise DocanalystError(f"drawing the page took longer than {timeout_s:.0f} s", path=path) from exc
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        raise DocanalystError("the page could not be drawn (the drawing process failed)", path=path)
    return answer
