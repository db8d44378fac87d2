"""How user-controlled text is shown and stored: file names, messages, model output.

Why one place: a file name can hold any bytes but ``/`` and NUL. On Linux a name that is not UTF-8 arrives as a
``str`` with lone surrogates (Python's ``surrogateescape``), which no UTF-8 output, JSON writer or SQLite column
accepts; a name with a newline can split an error over two lines and fake an ``error:`` line of its own; an
escape character can drive the terminal. Every path shown to a person goes through ``show_path``; every
message line through ``one_line``. Nothing here imports an adapter (the CLI escapes Rich markup on top).
"""

from __future__ import annotations

import os
import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Control characters, lone surrogates, line/paragraph separators; and the bidirectional overrides, which can
# make a name read differently from what it is ("Trojan source").
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE_CATEGORIES or char in _BIDI


def _escape_char(char: str, keep: str) -> str:
    if char in keep or not _unsafe(char):
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape): show the byte itself
        return f"\\x{code - 0xDC00:02x}"
    if char in _NAMED:
        return _NAMED[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str, keep: str = "") -> str:
    """``text`` with every character that is not shown as itself (control characters, lone surrogates, line
    separators, bidirectional overrides) written as a backslash escape; characters in ``keep`` (say ``"\\n"``)
    are left alone. Ordinary text, accents and spaces included, comes back unchanged."""
    if text.isprintable() or not any(_unsafe(c) for c in text):
        return text
    return "".join(_escape_char(c, keep) for c in text)


def one_line(text: str) -> str:
    """A message as exactly one line: newlines and other control characters escaped."""
    return printable(text)


def show_path(path: str | bytes | os.PathLike[str]) -> str:
    """A file name as one printable line, bytes that are not UTF-8 shown as ``\\xff``. For display only:
    the file itself is always opened through the original ``str`` (or ``os.fsencode`` of it)."""
    return printable(os.fsdecode(path) if isinstance(path, bytes) else os.fspath(path))


def storable(text: str) -> str:
    """``text`` that any UTF-8 sink (SQLite, a JSON/CSV file) accepts: bytes that were not UTF-8 become
    ``\\xff`` escapes, other lone surrogates ``\\udxxx``, and NUL ``\\x00`` (PostgreSQL's text takes none). Other
    text comes back unchanged."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join(_escape_char(c, "") if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def json_safe(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with lone surrogates written as JSON ``\\udcff``
    escapes: valid UTF-8 that ``json.loads`` turns back into the very same ``str`` (so ``os.fsencode`` gives
    the original bytes of a file name back: lossless)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
