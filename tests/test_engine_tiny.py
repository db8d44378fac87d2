"""The real Qwen3-Next code path on CPU: a 4-layer config on dummy weights, YaRN to 1,010,000 tokens.

Text from random weights is noise, so these tests assert engine settings and cache behaviour only.
"""

from __future__ import annotations

import pytest

from docanalyst.document import PageContent, build_document
from docanalyst.engines import GenerationRequest
from docanalyst.models import TINY_QWEN_DIR
from docanalyst.profiles import get_profile
from docanalyst.prompting import build_prompt, load_template
from docanalyst.schemas import RESULT_MODELS, json_schema_for
from docanalyst.tokenization import model_tokenizer

pytestmark = pytest.mark.engine


def test_window_and_yarn_are_applied(tiny_engine) -> None:
    profile = get_profile("qwen3-next-tiny")
    assert tiny_engine.max_model_len == 1_010_000 == profile.max_model_len
    rope = getattr(tiny_engine.hf_config, "rope_parameters", None) or tiny_engine.hf_config.rope_scaling
    assert rope["rope_type"] == "yarn" and rope["factor"] == 4.0
    assert rope["original_max_position_embeddings"] == 262_144
    assert tiny_engine.settings["enable_prefix_caching"] is True
    assert tiny_engine.settings["mamba_cache_mode"] == "align"
    assert tiny_engine.info.kv_cache_tokens and tiny_engine.info.kv_cache_tokens >= 1_010_000


def test_document_prefix_is_cached_across_templates(tiny_engine, base_settings) -> None:
    tok = model_tokenizer(base_settings.models_dir / TINY_QWEN_DIR)
    words = " ".join(f"Section {i}: the supplier shall deliver item {i * 7 % 101} on time." for i in range(700))
    document = build_document(
        [PageContent(words[i : i + 6000]) for i in range(0, len(words), 6000)], path="tiny.pdf", sha256="4" * 64
    )
    prompts = [build_prompt(document, load_template(name), tok) for name in ("contract", "paper", "generic")]
    assert len({p.prefix_ids for p in prompts}) == 1
    prefix = len(prompts[0].prefix_ids)
    assert prefix > 8000
    results = []
    for name, prompt in zip(("contract", "paper", "generic"), prompts, strict=True):
        schema = json_schema_for(RESULT_MODELS[name], document.page_count)
        [result] = tiny_engine.generate([GenerationRequest(prompt.token_ids, 32, schema)])
        results.append(result)
    assert results[0].cached_tokens == 0
    assert results[0].prompt_tokens == prompts[0].tokens
    second, third = results[1:]
    # Hybrid (Gated DeltaNet + attention) caching resumes from a retained state checkpoint: the 2nd question
    # from the last periodic one (every 4,096 tokens), the 3rd from the junction the 2nd registered.
    assert prefix - 4096 <= second.cached_tokens <= prefix
    assert prefix - 256 <= third.cached_tokens <= prefix
    assert all(r.completion_tokens >= 1 for r in results)
    assert all(r.finish_reason in ("stop", "length") for r in results)
