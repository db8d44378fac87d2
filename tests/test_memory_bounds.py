"""Memory stays bounded whatever the file: a document's length alone can refuse it (a proven bound, never
refusing what the exact count accepts), token counting happens in the bounded reader process, the reader caps
the text it hands on, and reader processes are reused across files yet still replaced at a limit.

The text bomb is generated here: thousands of pages that share one content stream, so a small file holds
millions of characters of text (a probe's 1.5 MB, 10,000-page file made the main process abort in the
tokenizer; on 3,000 pages it peaked at 860 MB).
"""

from __future__ import annotations

import os
import subprocess
import sys
import unicodedata
import zlib
from pathlib import Path

import pytest
from test_reliability import raw_pdf

from docanalyst.errors import BudgetError, PdfError
from docanalyst.isolation import (
    PdfMemoryError,
    PdfTextLimitError,
    PdfTimeoutError,
    ReaderPool,
    load_pdf_isolated,
    prepare_request,
)
from docanalyst.pdf import load_pdf
from docanalyst.pipeline import Analyzer, ExtractOptions, Prepared
from docanalyst.tokenization import MAX_COMPOSED_CHARS, estimate_tokenizer, model_tokenizer

from conftest import ROOT, SAMPLE_CONTRACT, pdf_from_objects

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS memory caps are a Linux feature")


def shared_stream_bomb(folder: Path, pages: int, lines: int = 60) -> Path:
    """``pages`` pages whose /Contents all point at one small compressed stream of ``lines`` lines of text."""
    text = b"".join(b"(Clause %04d: the party shall pay the invoice within thirty days.) '\n" % i for i in range(lines))
    stream = zlib.compress(b"BT /F1 9 Tf 11 TL 40 760 Td\n" + text + b"ET", 9)
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
    page += b"/Resources << /Font << /F1 4 0 R >> >> >>"
    objects += [page] * pages
    path = folder / f"bomb-{pages}.pdf"
    path.write_bytes(pdf_from_objects(objects))
    return path


def test_the_length_bound_is_a_true_lower_bound(base_settings) -> None:
    """ceil(chars / max_chars_per_token) never exceeds the exact count, on the worst text there is for it (the
    longest tokens repeated) and on real text; and the composition constant is what Unicode says."""
    assert max(len(unicodedata.normalize("NFD", chr(c))) for c in range(sys.maxunicode + 1)) == MAX_COMPOSED_CHARS
    smol = model_tokenizer(base_settings.models_dir / "smollm2-135m-instruct")
    assert smol.max_chars_per_token == 81  # "\n" and 80 spaces
    assert estimate_tokenizer().max_chars_per_token == 128
    real = load_pdf(SAMPLE_CONTRACT).text
    for tokenizer in (smol, estimate_tokenizer()):
        per_token = tokenizer.max_chars_per_token
        longest = sorted(set(_longest_texts(tokenizer)), key=len, reverse=True)[:50]
        for text in [real, *(t * 40 for t in longest), "".join(longest) * 3, "\n" + " " * 80 * 500]:
            assert tokenizer.count(text) * per_token >= len(text), (tokenizer.name, text[:40])
        worst = longest[0] * 100  # the bound is tight there: exactly one token per longest token
        assert tokenizer.count(worst) <= -(-len(worst) // per_token) + 100


def _longest_texts(tokenizer: object) -> list[str]:
    """The texts of the 200 longest tokens (decoded, so as they appear in a document)."""
    if hasattr(tokenizer, "_tok"):
        vocab = tokenizer._tok.get_vocab(with_added_tokens=False)
        ids = sorted(vocab.values(), key=lambda i: -len(tokenizer._tok.id_to_token(i)))[:200]
        return [tokenizer._tok.decode([i]) for i in ids]
    values = sorted(tokenizer._enc.token_byte_values(), key=len, reverse=True)[:400]
    return [v.decode("utf-8") for v in values if _decodes(v)][:200]


def _decodes(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def run_cli_measured(args: list[str], env: dict[str, str]) -> tuple[int, str, int]:
    """The CLI in a child process; (exit code, stderr, that process's own peak RSS in MB, readers excluded)."""
    code = (
        "import os, resource, runpy, sys\n"
        "def peak():\n    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "    sys.__stderr__.write(f'\\nPEAK_RSS_KB {kb}\\n')\n    sys.__stderr__.flush()\n"
        "_exit = os._exit\n"
        # the CLI ends with os._exit when it left an engine start behind (the reading failed first)
        "os._exit = lambda code: (peak(), _exit(code))\n"
        f"sys.argv = ['docanalyst', *{args!r}]\n"
        "try:\n    runpy.run_module('docanalyst.cli', run_name='__main__')\n"
        "finally:\n    peak()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    lines = proc.stderr.strip().splitlines()
    peak = int(next(line for line in reversed(lines) if line.startswith("PEAK_RSS_KB")).split()[1])
    shown = [line for line in lines if line.strip() and not line.startswith("PEAK_RSS_KB")]
    return proc.returncode, "\n".join(shown), peak // 1024


def test_a_text_bomb_is_refused_in_one_line_and_the_main_process_stays_small(tmp_path, db_env) -> None:
    bomb = shared_stream_bomb(tmp_path, pages=1500)
    assert bomb.stat().st_size < 1_000_000
    env = {**os.environ, "DOCANALYST_DB": db_env, "DOCANALYST_CPU_KV_GIB": "2"}
    small_rc, _, small_peak = run_cli_measured(["tokens", str(SAMPLE_CONTRACT), "--profile", "embedded"], env)
    assert small_rc == 0
    rc, stderr, peak = run_cli_measured(["extract", str(bomb), "--profile", "embedded"], env)
    assert rc == 4, stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: {bomb}: too long for profile 'embedded': needs at least ")
    assert "tokens (estimated from its length: " in line and "at most 81 per token" in line
    assert line.endswith("window is 8,192; nothing was truncated or sent; use a profile with a longer window "
                         "(e.g. --profile qwen3-next on a GPU)")  # fmt: skip
    assert "Traceback" not in stderr
    # The 6-million-character text never reaches the main process: its peak is that of a one-page document's
    # (counting it there took hundreds of MB: a probe's 3,000-page bomb peaked at 860 MB).
    assert peak < small_peak + 64, (peak, small_peak)
    # `tokens` counts the bomb exactly (no error: it reports), in the reader process too.
    rc, _, peak = run_cli_measured(["tokens", str(bomb), "--profile", "embedded"], env)
    assert rc == 0 and peak < small_peak + 64, (rc, peak, small_peak)


def test_counting_tokens_runs_out_of_memory_in_the_reader_not_here(tmp_path, settings) -> None:
    """A long-window profile cannot refuse the bomb from its length, so its tokens are counted exactly: in the
    reader process, under --max-memory. Past that cap the file fails with one plain line, and this process
    never held the text."""
    bomb = shared_stream_bomb(tmp_path, pages=1500)
    options = ExtractOptions(profile="qwen3-next-tiny", read_memory_mb=400, read_timeout_s=300)
    with pytest.raises(PdfMemoryError) as caught:
        Analyzer(settings).prepare(bomb, options)
    assert str(caught.value) == f"{bomb}: counting tokens needed more than 400 MB of memory"
    assert caught.value.exit_code == 3


def test_the_reader_caps_its_text() -> None:
    with pytest.raises(PdfTextLimitError) as caught:
        load_pdf_isolated(SAMPLE_CONTRACT, max_chars=1000)
    chars = len(load_pdf(SAMPLE_CONTRACT).text)
    assert str(caught.value) == (
        f"{SAMPLE_CONTRACT}: the text is {chars:,} characters, over the reader's cap of 1,000 (no profile's window "
        "could hold it); nothing was sent"
    )
    assert isinstance(caught.value, PdfError) and caught.value.exit_code == 3


def slow_bomb(folder: Path) -> Path:
    """A 1.6 MB PDF whose content stream expands to 1.6 GB of 'q Q': about a minute of parsing, little memory
    (the sample contract takes under two seconds, so a 20 s limit tells them apart even on a loaded machine)."""
    compressor = zlib.compressobj(9)
    chunk = b"q Q\n" * 250_000
    stream = b"".join(compressor.compress(chunk) for _ in range(1600)) + compressor.flush()
    path = folder / "slower.pdf"
    path.write_bytes(raw_pdf(stream))
    return path


def test_readers_are_reused_and_replaced_at_a_limit(tmp_path, settings) -> None:
    """Five files, two readers: the slow file's reader is killed and replaced, the others serve every file, and
    each answer equals reading and measuring in this process."""
    options = ExtractOptions(profile="embedded")
    slow = slow_bomb(tmp_path)
    paths = [SAMPLE_CONTRACT, SAMPLE_CONTRACT, slow, SAMPLE_CONTRACT, SAMPLE_CONTRACT]
    tasks = [(i, p, prepare_request(settings, p, options)) for i, p in enumerate(paths)]
    with ReaderPool(2, timeout_s=20, memory_mb=1024, planning=True) as pool:
        results = dict(pool.run(tasks))
        started = pool.started
    assert isinstance(results[2], PdfTimeoutError) and str(results[2]) == f"{slow}: reading took longer than 20 s"
    expected = Analyzer(settings).prepare_document(str(SAMPLE_CONTRACT), load_pdf(SAMPLE_CONTRACT), options, 0.0)
    for index in (0, 1, 3, 4):
        got = results[index]
        assert isinstance(got, Prepared)
        assert (got.document, got.budget, got.prompt, got.profile) == (
            expected.document,
            expected.budget,
            expected.prompt,
            expected.profile,
        )
    assert started in (2, 3)  # five files, two readers (plus one in place of the killed one if a file was left)


def test_a_budget_error_crosses_from_the_reader_with_its_numbers(settings) -> None:
    from conftest import LONG_CONTRACT

    with pytest.raises(BudgetError) as caught:
        Analyzer(settings).prepare(LONG_CONTRACT, ExtractOptions(profile="embedded"))
    assert caught.value.available == 8192 and caught.value.profile == "embedded" and caught.value.needed > 8192
    assert caught.value.exit_code == 4 and "too long for profile 'embedded': needs " in str(caught.value)
