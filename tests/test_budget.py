import gzip
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from docanalyst.budget import answer_schema
from docanalyst.document import PageContent, build_document
from docanalyst.errors import BudgetError
from docanalyst.output_bounds import worst_case_tokens
from docanalyst.pipeline import Analyzer, ExtractOptions
from docanalyst.profiles import get_profile
from docanalyst.prompting import build_prompt, load_template
from docanalyst.tokenization import model_tokenizer

from conftest import LONG_CONTRACT, SAMPLE_CONTRACT

ASSETS = Path(__file__).resolve().parent.parent / "bench" / "assets"


def test_sample_fits_embedded_with_exact_counts(settings) -> None:
    analyzer = Analyzer(settings)
    document, report, verdict = analyzer.budget(SAMPLE_CONTRACT, ExtractOptions(profile="embedded"))
    tok = model_tokenizer(settings.models_dir / "smollm2-135m-instruct")
    prompt = build_prompt(document, load_template("contract"), tok)
    assert report.exact and report.counter == "smollm2-135m-instruct"
    assert report.prompt_tokens == prompt.tokens
    # the reserve is the answer's worst case on this profile (output_bounds.py), plus the end-of-sequence token
    worst = worst_case_tokens(answer_schema(load_template("contract"), get_profile("embedded"), 2), tok) + 1
    assert report.reserve_tokens == worst == 2222 and report.window == 8192
    assert report.needed == report.prompt_tokens + worst
    assert report.document_tokens == report.prompt_tokens - report.overhead_tokens
    assert verdict == "fits"


def test_long_contract_fails_with_the_numbers(settings) -> None:
    analyzer = Analyzer(settings)
    document = analyzer.load(LONG_CONTRACT, ExtractOptions())
    _, report, verdict = analyzer.budget(LONG_CONTRACT, ExtractOptions(profile="embedded"))
    assert verdict == "too-long"
    with pytest.raises(BudgetError) as info:
        analyzer.plan(document, ExtractOptions(profile="embedded"))
    err = info.value
    assert err.needed == report.needed and err.available == 8192 and err.profile == "embedded"
    assert str(err).endswith(
        f"too long for profile 'embedded': needs {report.needed:,} tokens ({report.prompt_tokens:,} prompt + "
        f"{report.reserve_tokens:,} reserved for the answer), window is 8,192; nothing was truncated or sent; "
        "use a profile with a longer window (e.g. --profile qwen3-next on a GPU)"
    )


@pytest.fixture
def qwen_in_hub_cache(tmp_path, monkeypatch) -> None:
    """The Qwen3-Next tokenizer (bench/assets) where a `models pull --tokenizer-only` puts it: a hub cache of its
    own. A prompt is never measured with an estimate, so planning for the GPU profiles needs the real one."""
    from huggingface_hub import constants

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--Qwen--Qwen3-Next-80B-A3B-Instruct-FP8"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (snapshot / "tokenizer.json").write_bytes(gzip.decompress((ASSETS / "tokenizer.json.gz").read_bytes()))
    shutil.copy(ASSETS / "tokenizer_config.json", snapshot / "tokenizer_config.json")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


def _synthetic(tokens_wanted: int):
    # ~1 cl100k token per word for this vocabulary; varied so nothing collapses.
    words = [f"clause{i % 997} term{i % 389}" for i in range(tokens_wanted // 4)]
    text = " ".join(words)
    pages = [PageContent(text[i : i + 40000]) for i in range(0, len(text), 40000)]
    return build_document(pages, path="big.pdf", sha256="3" * 64)


def test_switch_to_yarn_only_when_allowed(settings, qwen_in_hub_cache) -> None:
    analyzer = Analyzer(settings)
    doc = _synthetic(300_000)
    plan = analyzer.plan(doc, ExtractOptions(profile="qwen3-next", allow_yarn=True))
    assert plan.profile.name == "qwen3-next-1m" and plan.budget.window == 1_010_000 and plan.budget.exact
    notes = plan.notes
    assert notes[0].startswith("document needs ") and "using 'qwen3-next-1m' (YaRN, window 1,010,000)" in notes[0]
    with pytest.raises(BudgetError, match="it fits profile 'qwen3-next-1m' \\(YaRN\\): rerun with --allow-yarn"):
        analyzer.plan(doc, ExtractOptions(profile="qwen3-next", allow_yarn=False))


def test_a_server_is_never_asked_for_the_longer_window(settings, qwen_in_hub_cache) -> None:
    """With --engine URL the server's one window decides: no switch to the YaRN profile it does not serve (on the
    H200 a 260K-token bundle was planned for qwen3-next-1m and the qwen3-next server refused the request)."""
    served = replace(settings, engine="http://127.0.0.1:9")  # never contacted: the tokenizer is in the hub cache
    with pytest.raises(BudgetError) as info:
        Analyzer(served).plan(_synthetic(300_000), ExtractOptions(profile="qwen3-next", allow_yarn=True))
    assert info.value.exit_code == 4  # over budget, as for any document too long for its window
    assert (
        "the engine at http://127.0.0.1:9 serves this profile's window only: serve the longer one "
        "(`docanalyst serve --profile qwen3-next-1m`) and pass --profile qwen3-next-1m" in str(info.value)
    )


def test_tokens_and_extraction_share_one_long_document_rule(settings, qwen_in_hub_cache) -> None:
    """`docanalyst tokens` says what extraction would do: the long profile when only it fits, else too long."""
    from docanalyst.planning import assess

    needs_long, too_long = _synthetic(300_000), _synthetic(1_200_000)
    report, verdict = assess(settings, needs_long, ExtractOptions(profile="qwen3-next"))
    assert (verdict, verdict.kind, report.profile, report.fits) == ("needs qwen3-next-1m (YaRN)", "needs-long-profile",
                                                                     "qwen3-next", False)  # fmt: skip
    assert Analyzer(settings).plan(needs_long, ExtractOptions(profile="qwen3-next")).profile.name == "qwen3-next-1m"
    assert assess(settings, too_long, ExtractOptions(profile="qwen3-next"))[1] == "too-long"


def test_too_long_even_for_yarn(settings, qwen_in_hub_cache) -> None:
    doc = _synthetic(1_200_000)
    with pytest.raises(BudgetError, match="too long for profile 'qwen3-next-1m': needs") as info:
        Analyzer(settings).plan(doc, ExtractOptions(profile="qwen3-next"))
    assert info.value.available == 1_010_000 and info.value.needed > 1_010_000


def test_default_profile_follows_the_gpu(settings) -> None:
    from docanalyst.profiles import default_profile_name

    assert default_profile_name("qwen3-next-tiny") == "qwen3-next-tiny"
    assert default_profile_name(None) in ("embedded", "qwen3-next")
    assert replace(settings, profile="embedded").profile == "embedded"
