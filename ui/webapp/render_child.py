"""The child process that draws one PDF page as a PNG, with the quote highlighted.

It runs as its own Python process (``page_images.render_page`` starts it), never imported by the web server:
MuPDF is C, and an uploaded file may be hostile or broken, so drawing a page is bounded in memory (the address
space is capped before the file is opened) and in time (the parent kills it), like reading in isolation.py.
Request: one JSON object on stdin. Answer: one JSON line on stdout, ``{"hits": n}`` or ``{"error": "..."}``;
the PNG goes to the file the request names (bytes never cross a pipe as JSON).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any


def quote_pieces(quote: str) -> list[str]:
    """The whole quote first, then its lines and sentences (a quote may wrap across lines in the PDF)."""
    whole = " ".join(quote.split())
    pieces = [whole]
    for part in re.split(r"(?<=[.;:])\s+|\n", quote):
        part = " ".join(part.split())
        if len(part) >= 12 and part not in pieces:
            pieces.append(part)
    return pieces


def content_area(page: Any, border: float = 24.0) -> Any:
    """The page area that has anything on it, with a border; the whole page when it is blank."""
    import pymupdf

    area = pymupdf.Rect()
    for _kind, rect in page.get_bboxlog():
        r = pymupdf.Rect(rect)
        if r.is_valid and not r.is_empty and r.width < page.rect.width * 2:
            area |= r
    if area.is_empty:
        return page.rect
    area = pymupdf.Rect(area.x0 - border, area.y0 - border, area.x1 + border, area.y1 + border) & page.rect
    return area if area.height > 72 else page.rect


def highlight(page: Any, quote: str | None, occurrence: int | None = None) -> tuple[int, Any]:
    """Mark the quote on the page; the number of marks. With ``occurrence`` (the k-th time the located words
    appear on the page, counted by grounding) only that one is marked and boxed: ")" or "the Company" appear
    many times, and marking them all shows nothing. Without it, every occurrence (or, failing the whole, its
    pieces) is marked."""
    if not quote or not quote.strip():
        return 0, None
    hits, marked = 0, None
    pieces = quote_pieces(quote)
    for piece in pieces:
        quads = page.search_for(piece, quads=True)
        if quads and occurrence is not None and piece == pieces[0]:
            quads = _one_occurrence(page, piece, quads, occurrence)
        if quads:
            annot = page.add_highlight_annot(quads)
            annot.set_colors(stroke=(1.0, 0.85, 0.0))
            annot.update()
            hits += len(quads)
            if occurrence is not None and piece == pieces[0]:
                marked = _box(page, quads)
            if piece == pieces[0]:
                break  # the whole quote is marked: its parts need no second pass
    return hits, marked


def _one_occurrence(page: Any, piece: str, quads: list[Any], occurrence: int) -> list[Any]:
    """The quads of the k-th occurrence: a hit that wraps across lines has one quad per line, so the quads are
    split evenly among the occurrences the page's words hold (all of them when that does not divide)."""
    text = " ".join(page.get_text("text").split()).casefold()
    count = max(1, text.count(piece.casefold()))
    if len(quads) % count or occurrence >= count:
        return quads
    size = len(quads) // count
    return quads[occurrence * size : (occurrence + 1) * size]


def _box(page: Any, quads: list[Any]) -> Any:
    """A red frame around the evidence, so the eye finds it on a zoomed-out page; the framed area."""
    import pymupdf

    area = pymupdf.Rect()
    for quad in quads:
        area |= quad.rect
    frame = page.add_rect_annot(pymupdf.Rect(area.x0 - 3, area.y0 - 3, area.x1 + 3, area.y1 + 3))
    frame.set_colors(stroke=(0.85, 0.1, 0.1))
    frame.set_border(width=1.5)
    frame.update()
    return area


def zoomed(clip: Any, marked: Any, zoom: float) -> Any:
    """Zoom: the part of ``clip`` 1/zoom its size, centred on the boxed evidence (else on the clip's top),
    drawn at zoom times the resolution, so the words grow on the screen."""
    import pymupdf

    if zoom <= 1.0:
        return clip
    width, height = clip.width / zoom, clip.height / zoom
    cx = (marked.x0 + marked.x1) / 2 if marked is not None else clip.x0 + width / 2
    cy = (marked.y0 + marked.y1) / 2 if marked is not None else clip.y0 + height / 2
    x0 = min(max(clip.x0, cx - width / 2), clip.x1 - width)
    y0 = min(max(clip.y0, cy - height / 2), clip.y1 - height)
    return pymupdf.Rect(x0, y0, x0 + width, y0 + height)


def draw(request: dict[str, Any]) -> dict[str, Any]:
    """Open, authenticate, highlight (on the in-memory copy: the file on disk never changes), draw."""
    import pymupdf

    try:
        doc = pymupdf.open(request["path"], filetype="pdf")
    except Exception:
        return {"error": "cannot open the PDF to show the page"}
    try:
        if doc.needs_pass and not doc.authenticate(request.get("password") or ""):
            return {"error": "encrypted: the password is needed to show the page"}
        number = int(request["page"])
        if not 1 <= number <= doc.page_count:
            return {"error": f"page {number} is outside 1..{doc.page_count}"}
        page = doc.load_page(number - 1)
        hits, marked = highlight(page, request.get("quote"), request.get("occurrence"))
        clip = content_area(page) if request.get("crop", True) else page.rect
        clip = zoomed(clip, marked, float(request.get("zoom", 1.0)))
        dpi = int(int(request.get("dpi", 120)) * max(1.0, float(request.get("zoom", 1.0))))
        page.get_pixmap(dpi=dpi, annots=True, clip=clip).save(request["out"], output="png")
        return {"hits": hits}
    finally:
        doc.close()


def main() -> None:
    request = json.loads(sys.stdin.readline())
    from docanalyst.reader_process import cap_memory

    cap_memory(int(request.get("memory_mb", 1024)))
    try:
        answer = draw(request)
    except MemoryError:
        answer = {"error": f"drawing the page needed more than {request.get('memory_mb')} MB of memory"}
    except Exception as exc:  # a broken file: one plain line for the page
        answer = {"error": f"the page could not be drawn ({type(exc).__name__})"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
