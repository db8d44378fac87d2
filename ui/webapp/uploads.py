"""Uploaded files (PDFs and template files) saved under the home, content-addressed, with safe names.

Why content-addressed: the same bytes always land on the same path, so Streamlit's caches (keyed by path) are
reused across reruns and sessions, and an edited template file gets a new path (and so a new cache entry).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

MAX_UPLOAD_MB = 50
MAX_TEMPLATE_KB = 256
MAX_FILES = 20
UPLOAD_DIR = "uploads"
TEMPLATE_SUFFIXES = (".yaml", ".yml", ".json")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_filename(name: str, max_len: int = 100, suffixes: tuple[str, ...] = (".pdf",)) -> str:
    """A safe file name: the last path part only, ASCII letters, digits, dot, dash, underscore; it ends in one of
    ``suffixes`` (the first one when the name has none of them). A browser sends whatever name it likes."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    base = _UNSAFE.sub("_", base).strip("._-")
    suffix = next((s for s in suffixes if base.lower().endswith(s)), suffixes[0])
    stem = base[: -len(suffix)] if base.lower().endswith(suffix) else base
    stem = stem.strip("._-")[: max_len - len(suffix)] or "document"
    return f"{stem}{suffix}"


@dataclass
class SavedUpload:
    name: str  # the sanitised file name shown to the user
    original_name: str
    path: Path
    sha256: str
    size: int


class UploadError(ValueError):
    pass


def _save(folder: Path, name: str, original_name: str, data: bytes) -> SavedUpload:
    digest = hashlib.sha256(data).hexdigest()
    target = folder / digest[:16]
    target.mkdir(parents=True, exist_ok=True)
    path = target / name
    if not path.exists() or path.stat().st_size != len(data):
        tmp = target / f".{name}.partial"
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: a reader never sees half a file
    return SavedUpload(name, original_name, path, digest, len(data))


def save_upload(home: Path, original_name: str, data: bytes, max_mb: int = MAX_UPLOAD_MB) -> SavedUpload:
    """Save a PDF under ``<home>/uploads/<sha256 prefix>/<safe name>`` (same bytes -> same path)."""
    if len(data) > max_mb * 1024 * 1024:
        raise UploadError(f"{original_name}: {len(data) / 1e6:.1f} MB is over the {max_mb} MB limit")
    if not data:
        raise UploadError(f"{original_name}: the file is empty")
    return _save(Path(home) / UPLOAD_DIR, sanitize_filename(original_name), original_name, data)


def save_template_upload(home: Path, original_name: str, data: bytes) -> SavedUpload:
    """Save a template file under ``<home>/uploads/templates/<sha256 prefix>/<safe name>``, keeping its
    .yaml/.yml/.json suffix (the template reader picks the format by it)."""
    if len(data) > MAX_TEMPLATE_KB * 1024:
        raise UploadError(f"{original_name}: {len(data) / 1e3:.0f} kB is over the {MAX_TEMPLATE_KB} kB limit")
    if not data.strip():
        raise UploadError(f"{original_name}: the file is empty")
    name = sanitize_filename(original_name, suffixes=TEMPLATE_SUFFIXES)
    return _save(Path(home) / UPLOAD_DIR / "templates", name, original_name, data)
