#!/usr/bin/env python3
"""docanalyst's GPU path against raw vLLM on the same engine (issue 3).

One process builds ONE engine through docanalyst (``VllmEngine`` with a named profile) and sends the very same
token ids two ways:

* docanalyst: ``build_prompt`` (document first, task last) -> ``VllmEngine.generate([GenerationRequest])``
* raw vLLM:   ``engine.llm.generate(TokensPrompt(ids), SamplingParams(...))`` on the same ``vllm.LLM``

The prefix cache is reset before every measured call, so neither path profits from the other's prefill, and the
order of the two paths alternates between repeats. Times to first token and decode times are vLLM's own
per-request stats (the engine runs with ``disable_log_stats=False``), read the same way for both paths.

The model folder is built at run time: config.json (default: the real Qwen3-Next-80B-A3B FP8 layout in
docanalyst/engine_configs) + tokenizer files from bench/assets; weights are random (``load_format="dummy"``),
so the text is noise but every kernel, the memory layout and the timings are those of the real model.

Runs on any CUDA machine with vLLM installed. Example (the sizes are split over several commands so that none
runs past ten minutes; see docs/BENCHMARKS.md for the exact commands used):

    python bench/gpu_bench.py --profile qwen3-next --size 32000:both:3 --size 128000:both:2 \
        --size 258000:both:1 --prefix-reuse 258000 --batch 16x16000 --structured 32000 \
        --engine-kwargs '{"load_format": "dummy", "gdn_prefill_backend": "triton"}' --out results.json

Size spec: TARGET_PROMPT_TOKENS[:both|docanalyst|raw[:REPEATS]].
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Only the GPU-free, PDF-free layers of docanalyst (no pipeline/cli/pdf/store imports).
from docanalyst.budget import reserve_for  # noqa: E402
from docanalyst.document import Document, PageContent, build_document  # noqa: E402
from docanalyst.engines import GenerationRequest, VllmEngine  # noqa: E402
from docanalyst.profiles import get_profile  # noqa: E402
from docanalyst.prompting import build_prompt, load_template  # noqa: E402
from docanalyst.schemas import RESULT_MODELS, json_schema_for  # noqa: E402
from docanalyst.tokenization import model_tokenizer  # noqa: E402

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_CONFIG = REPO / "docanalyst" / "engine_configs" / "qwen3-next-80b-a3b-fp8.config.json"

# --------------------------------------------------------------------------------------------------------------
# Synthetic documents: varied English prose (seeded), different for every document so the prefix cache cannot
# make one size look fast because of another.
# --------------------------------------------------------------------------------------------------------------
_NOUNS = (
    "agreement party supplier customer licensor licensee consultant company contractor service product invoice "
    "payment fee term period notice schedule clause section exhibit obligation warranty liability indemnity "
    "breach remedy dispute court jurisdiction law regulation authority data record report audit account budget "
    "delivery shipment order quantity price discount tax penalty interest deadline milestone project phase "
    "experiment model method dataset sample result figure table analysis hypothesis theory evidence measurement "
    "error variance estimate parameter baseline benchmark network layer sequence token window memory cache "
    "committee board director officer employee member shareholder investor lender borrower tenant landlord "
    "property premises equipment software license patent trademark copyright secret information disclosure "
    "river city village harbour mountain forest valley bridge road railway station library museum garden market "
    "winter summer autumn spring morning evening history chapter letter journey voyage captain sailor merchant"
).split()
_VERBS = (
    "provides requires delivers accepts rejects approves reviews terminates renews extends limits excludes "
    "includes describes measures estimates reports observes confirms notifies assigns transfers pays receives "
    "maintains protects discloses restricts governs binds waives amends replaces supports improves reduces "
    "increases compares evaluates trains tests builds studies explains follows crosses reaches leaves enters"
).split()
_ADJS = (
    "reasonable material prior written annual monthly quarterly final initial additional separate applicable "
    "relevant significant robust efficient accurate large small early late northern southern quiet busy ancient "
    "modern careful sudden gradual independent exclusive non-exclusive confidential public standard optional"
).split()
_NAMES = (
    "Acme Corporation|Beta Logistics LLC|Northwind Traders|Contoso Ltd|Fabrikam Inc|Globex Holdings|Initech|"
    "Umbrella Services|Stark Industries|Wayne Enterprises|Hooli|Vandelay Imports|Oceanic Airlines|Tyrell Systems"
).split("|")
_PLACES = "New York|Delaware|England and Wales|Ontario|Bavaria|New South Wales|Singapore|Ireland|California".split("|")
_MONTHS = "January February March April May June July August September October November December".split()


def _sentence(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.18:
        return (
            f"{rng.choice(_NAMES)} {rng.choice(_VERBS)} the {rng.choice(_ADJS)} {rng.choice(_NOUNS)} "
            f"under Section {rng.randint(1, 40)}.{rng.randint(1, 12)} on {rng.randint(1, 28)} "
            f"{rng.choice(_MONTHS)} {rng.randint(1990, 2035)}."
        )
    if kind < 0.30:
        return (
            f"This {rng.choice(_NOUNS)} is governed by the laws of {rng.choice(_PLACES)}, and any "
            f"{rng.choice(_NOUNS)} of {rng.randint(2, 900):,} units at {rng.randint(3, 99)}.{rng.randint(0, 99):02d} "
            f"dollars {rng.choice(_VERBS)} a {rng.choice(_ADJS)} {rng.choice(_NOUNS)}."
        )
    if kind < 0.40:
        return (
            f"In Table {rng.randint(1, 30)}, the {rng.choice(_NOUNS)} reaches {rng.uniform(0, 100):.2f}% "
            f"(n = {rng.randint(10, 50000)}, p < 0.{rng.randint(1, 50):02d}) against the {rng.choice(_ADJS)} "
            f"{rng.choice(_NOUNS)}."
        )
    words = []
    for _ in range(rng.randint(8, 22)):
        r = rng.random()
        words.append(rng.choice(_NOUNS) if r < 0.45 else rng.choice(_VERBS) if r < 0.65 else
                     rng.choice(_ADJS) if r < 0.85 else rng.choice(("the", "a", "of", "and", "with", "for", "to")))
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice((".", ".", ".", ";", ", which the parties note."))


def synthetic_pages(rng: random.Random, count: int, words_per_page: int = 330) -> list[str]:
    pages = []
    for number in range(count):
        parts: list[str] = [f"{rng.choice(_NAMES).upper()} - {rng.choice(_NOUNS).upper()} {number + 1}"]
        para: list[str] = []
        n = 0
        while n < words_per_page:
            s = _sentence(rng)
            para.append(s)
            n += s.count(" ") + 1
            if rng.random() < 0.18:
                parts.append(" ".join(para))
                para = []
        if para:
            parts.append(" ".join(para))
        pages.append("\n\n".join(parts))
    return pages


def make_document(target_prompt_tokens: int, seed: str, tokenizer: Any, template_name: str,
                  hard_max: int) -> tuple[Document, Any]:
    """A document whose docanalyst prompt (with this template) is about target tokens and never above hard_max."""
    rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))
    template = load_template(template_name)
    target = min(target_prompt_tokens, hard_max)
    sample = synthetic_pages(rng, 4)
    per_page = statistics.mean(tokenizer.count(p) for p in sample) + 6  # + "[Page N]" header and separator
    pages = sample + synthetic_pages(rng, max(1, int(target / per_page * 1.02)) - len(sample) + 1)
    counts = [tokenizer.count(p) + 6 for p in pages]
    digest = hashlib.sha256(seed.encode()).hexdigest()

    def build(n: int) -> tuple[Document, Any]:
        doc = build_document([PageContent(text=t) for t in pages[:n]], path=f"synthetic-{seed}.pdf", sha256=digest,
                             title=f"Synthetic document {seed}")
        return doc, build_prompt(doc, template, tokenizer)

    n = len(pages)
    doc, prompt = build(n)
    for _ in range(8):  # converge on the target: drop (or note) pages by measured counts
        if prompt.tokens <= target:
            break
        excess = prompt.tokens - target
        drop = 0
        while excess > 0 and n - drop > 1:
            drop += 1
            excess -= counts[n - drop]
        n -= drop
        doc, prompt = build(n)
    if prompt.tokens > hard_max:
        raise SystemExit(f"could not fit {seed} under {hard_max} tokens ({prompt.tokens})")
    return doc, prompt


# --------------------------------------------------------------------------------------------------------------
# GPU memory: sampled from NVML (the engine runs in a child process; the parent has no CUDA context).
# --------------------------------------------------------------------------------------------------------------
class GpuMemory:
    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.peak_mib = 0.0
        self.phase_peak_mib = 0.0
        self.total_mib: float | None = None
        self.source = "none"
        self._stop = threading.Event()
        self._read = self._make_reader()
        if self._read is not None:
            threading.Thread(target=self._loop, daemon=True).start()

    def _make_reader(self):  # type: ignore[no-untyped-def]
        index = int((os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0] or 0)
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self.total_mib = pynvml.nvmlDeviceGetMemoryInfo(handle).total / 2**20
            self.source = "nvml"
            return lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
        except Exception:
            pass
        if shutil.which("nvidia-smi"):
            def smi() -> float:
                out = subprocess.run(
                    ["nvidia-smi", f"--id={index}", "--query-gpu=memory.used,memory.total",
                     "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10).stdout
                used, total = (float(x) for x in out.strip().splitlines()[0].split(","))
                self.total_mib = total
                return used
            try:
                smi()
                self.source = "nvidia-smi"
                return smi
            except Exception:
                return None
        return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval_s)

    def sample(self) -> float | None:
        if self._read is None:
            return None
        try:
            used = float(self._read())
        except Exception:
            return None
        self.peak_mib = max(self.peak_mib, used)
        self.phase_peak_mib = max(self.phase_peak_mib, used)
        return used

    def phase(self) -> float:
        """Peak since the last call (and start a new phase)."""
        self.sample()
        peak, self.phase_peak_mib = self.phase_peak_mib, 0.0
        return round(peak / 1024, 2)


# --------------------------------------------------------------------------------------------------------------
# The two paths, measured identically.
# --------------------------------------------------------------------------------------------------------------
def _stats(output: Any) -> dict[str, Any]:
    """Per-request figures from a raw vllm RequestOutput (the same fields docanalyst's engine reads)."""
    completion = output.outputs[0]
    m = getattr(output, "metrics", None)
    ttft = getattr(m, "first_token_latency", None)
    first, last = getattr(m, "first_token_ts", 0.0), getattr(m, "last_token_ts", 0.0)
    decode = last - first if first and last else None
    n = len(completion.token_ids)
    return {
        "prompt_tokens": len(output.prompt_token_ids or []),
        "cached_tokens": int(output.num_cached_tokens or 0),
        "completion_tokens": n,
        "finish_reason": completion.finish_reason,
        "ttft_s": float(ttft) if ttft is not None else None,
        "decode_s": decode,
        "decode_tok_s": (n - 1) / decode if decode and n >= 2 else None,
    }


def _from_result(r: Any) -> dict[str, Any]:
    return {
        "prompt_tokens": r.prompt_tokens,
        "cached_tokens": r.cached_tokens,
        "completion_tokens": r.completion_tokens,
        "finish_reason": r.finish_reason,
        "ttft_s": r.ttft_s,
        "decode_s": r.decode_s,
        "decode_tok_s": r.decode_tokens_per_s,
    }


def run_docanalyst(engine: VllmEngine, ids_list: list[list[int]], max_tokens: int,
                   schema: dict[str, Any] | None = None) -> tuple[float, list[dict[str, Any]]]:
    requests = [GenerationRequest(prompt_token_ids=ids, max_tokens=max_tokens, json_schema=schema) for ids in ids_list]
    t0 = time.perf_counter()
    results = engine.generate(requests)
    return time.perf_counter() - t0, [_from_result(r) for r in results]


def run_raw(engine: VllmEngine, ids_list: list[list[int]], max_tokens: int,
            schema: dict[str, Any] | None = None) -> tuple[float, list[dict[str, Any]]]:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    extra: dict[str, Any] = {}
    if schema is not None:
        try:
            from vllm.sampling_params import StructuredOutputsParams

            extra = {"structured_outputs": StructuredOutputsParams(json=schema)}
        except ImportError:
            from vllm.sampling_params import GuidedDecodingParams  # type: ignore[attr-defined]

            extra = {"guided_decoding": GuidedDecodingParams(json=schema)}
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=0, **extra)
    prompts = [TokensPrompt(prompt_token_ids=ids) for ids in ids_list]
    t0 = time.perf_counter()
    outputs = engine.llm.generate(prompts, params, use_tqdm=False)
    return time.perf_counter() - t0, [_stats(o) for o in outputs]


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _med(values: list[Any]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.median(vals), 4) if vals else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.results: dict[str, Any] = {
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "profile": args.profile,
            "sizes": [],
            "errors": [],
        }
        self.mem = GpuMemory()
        self.t_start = time.perf_counter()

    # ---- bookkeeping -----------------------------------------------------------------------------------------
    def save(self) -> None:
        self.results["elapsed_s"] = round(time.perf_counter() - self.t_start, 1)
        self.results["gpu_peak_used_gib"] = round(self.mem.peak_mib / 1024, 2)
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.results, indent=1, default=str))
        tmp.replace(self.out)

    def log(self, msg: str) -> None:
        print(f"[bench {time.perf_counter() - self.t_start:7.1f}s] {msg}", flush=True)

    def reset_cache(self) -> bool:
        ok = bool(self.engine.llm.reset_prefix_cache())
        if not ok:
            self.log("WARNING: reset_prefix_cache() returned False")
        return ok

    # ---- set-up ----------------------------------------------------------------------------------------------
    def build_model_folder(self) -> Path:
        folder = Path(self.args.model_dir or tempfile.mkdtemp(prefix="docanalyst-qwen3next-"))
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.args.config, folder / "config.json")
        tok_dir = Path(self.args.tokenizer_dir)
        for name in ("tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
            if (tok_dir / name).exists():
                shutil.copyfile(tok_dir / name, folder / name)
        if (tok_dir / "tokenizer.json").exists():
            shutil.copyfile(tok_dir / "tokenizer.json", folder / "tokenizer.json")
        else:
            with gzip.open(tok_dir / "tokenizer.json.gz", "rb") as src, open(folder / "tokenizer.json", "wb") as dst:
                shutil.copyfileobj(src, dst)
        return folder

    def start(self) -> None:
        args = self.args
        profile = get_profile(args.profile)
        changes: dict[str, Any] = {}
        for item in args.set or []:
            key, _, value = item.partition("=")
            changes[key] = json.loads(value)
        if changes:
            profile = dataclasses.replace(profile, **changes)
        self.profile = profile
        folder = self.build_model_folder()
        self.tokenizer = model_tokenizer(folder)
        if args.vllm_log_level:
            os.environ["VLLM_LOGGING_LEVEL"] = args.vllm_log_level
        overrides = json.loads(args.engine_kwargs) if args.engine_kwargs else {}
        self.results.update({
            "profile_overrides": changes,
            "engine_overrides": overrides,
            "model_folder": str(folder),
            "gpu_mem_before_start_gib": round((self.mem.sample() or 0) / 1024, 2),
            "gpu_total_gib": round(self.mem.total_mib / 1024, 2) if self.mem.total_mib else None,
            "gpu_mem_source": self.mem.source,
        })
        try:
            import torch  # no CUDA context is created: the engine's child process owns the GPU

            self.results["torch"] = torch.__version__
        except Exception:
            pass
        try:
            import vllm

            self.results["vllm"] = vllm.__version__
        except Exception:
            pass
        try:
            self.results["device_name"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        except Exception:
            pass
        self.log(f"starting engine: profile {profile.name}, max_model_len {profile.max_model_len}, overrides {overrides}")
        self.mem.phase()
        self.engine = VllmEngine(profile, folder, overrides=overrides)
        info = self.engine.info
        self.results["engine"] = {
            "start_s": round(info.start_s, 1),
            "kv_cache_tokens": info.kv_cache_tokens,
            "settings": info.settings,
            "max_model_len": self.engine.max_model_len,
            "gpu_used_after_start_gib": round((self.mem.sample() or 0) / 1024, 2),
            "gpu_peak_during_start_gib": self.mem.phase(),
        }
        self.log(f"engine up in {info.start_s:.1f} s; KV cache {info.kv_cache_tokens} tokens; "
                 f"GPU used {self.results['engine']['gpu_used_after_start_gib']} GiB")
        self.save()

    def hard_max(self, template_name: str) -> int:
        # reserve_for now counts the schema's worst case (output_bounds.py); a 1-page document is the usual bound
        reserve = reserve_for(load_template(template_name), self.profile, self.tokenizer, 1)
        return self.engine.max_model_len - max(reserve, self.args.max_tokens)

    def doc(self, target: int, tag: str, template: str = "generic") -> tuple[Document, Any, float]:
        t0 = time.perf_counter()
        doc, prompt = make_document(target, f"{tag}-{target}-{self.args.seed}", self.tokenizer, template,
                                    self.hard_max(template))
        return doc, prompt, time.perf_counter() - t0

    # ---- phases ----------------------------------------------------------------------------------------------
    def warmup(self) -> None:
        self.log("warm-up (not measured)")
        ids = [self.doc(self.args.warmup_tokens, "warmup")[1].token_ids, self.doc(3000, "warmup-b")[1].token_ids]
        run_raw(self.engine, ids, 16)
        run_docanalyst(self.engine, ids[:1], 16)
        self.reset_cache()

    def size(self, target: int, paths: str, repeats: int) -> None:
        doc, prompt, build_s = self.doc(target, "size")
        ids = prompt.token_ids
        self.log(f"size {target}: prompt {len(ids)} tokens, {doc.page_count} pages (built in {build_s:.1f} s)")
        runs: dict[str, list[dict[str, Any]]] = {"docanalyst": [], "raw": []}
        order = ["docanalyst", "raw"] if paths == "both" else [paths]
        for rep in range(repeats):
            for path in (order if rep % 2 == 0 else order[::-1]):
                self.reset_cache()
                if path == "docanalyst":
                    t0 = time.perf_counter()  # docanalyst's own cost includes building the prompt
                    _, p2 = doc, build_prompt(doc, load_template("generic"), self.tokenizer)
                    prompt_s = time.perf_counter() - t0
                    assert p2.token_ids == ids
                    wall, stats = run_docanalyst(self.engine, [p2.token_ids], self.args.max_tokens)
                else:
                    prompt_s = 0.0
                    wall, stats = run_raw(self.engine, [ids], self.args.max_tokens)
                row = {**stats[0], "rep": rep, "wall_s": round(wall, 3), "prompt_build_s": round(prompt_s, 3)}
                runs[path].append(row)
                self.log(f"  {path:10s} rep {rep}: TTFT {_f(row['ttft_s'])} s, decode {_f(row['decode_tok_s'], 1)} tok/s, "
                         f"{row['completion_tokens']} out, cached {row['cached_tokens']}, wall {wall:.2f} s")
        entry = {"target": target, "prompt_tokens": len(ids), "pages": doc.page_count, "profile": self.profile.name,
                 "runs": runs, "gpu_peak_gib": self.mem.phase()}
        for path, rows in runs.items():
            if rows:
                entry[path] = {
                    "ttft_s": _med([r["ttft_s"] for r in rows]),
                    "decode_tok_s": _med([r["decode_tok_s"] for r in rows]),
                    "wall_s": _med([r["wall_s"] for r in rows]),
                    "prefill_tok_s": _ratio(len(ids), _med([r["ttft_s"] for r in rows])),
                    "n": len(rows),
                }
        if runs["docanalyst"] and runs["raw"]:
            entry["ratio_ttft"] = _ratio(entry["docanalyst"]["ttft_s"], entry["raw"]["ttft_s"])
            entry["ratio_decode"] = _ratio(entry["docanalyst"]["decode_tok_s"], entry["raw"]["decode_tok_s"])
            entry["ratio_wall"] = _ratio(entry["docanalyst"]["wall_s"], entry["raw"]["wall_s"])
        self.results["sizes"].append(entry)
        self.save()

    def structured(self, target: int, repeats: int) -> None:
        doc, prompt, _ = self.doc(target, "structured", "contract")
        ids = prompt.token_ids
        schema = json_schema_for(RESULT_MODELS["contract"], doc.page_count)
        self.log(f"structured output (contract schema): prompt {len(ids)} tokens")
        run_raw(self.engine, [ids[:2000]], 8, schema)  # compile the grammar once (cached): not part of the figure
        runs: dict[str, list[dict[str, Any]]] = {"docanalyst": [], "raw": []}
        for rep in range(repeats):
            for path in (("docanalyst", "raw") if rep % 2 == 0 else ("raw", "docanalyst")):
                self.reset_cache()
                fn = run_docanalyst if path == "docanalyst" else run_raw
                wall, stats = fn(self.engine, [ids], self.args.max_tokens, schema)
                runs[path].append({**stats[0], "rep": rep, "wall_s": round(wall, 3)})
                self.log(f"  {path:10s} rep {rep}: TTFT {_f(stats[0]['ttft_s'])} s, "
                         f"decode {_f(stats[0]['decode_tok_s'], 1)} tok/s, {stats[0]['completion_tokens']} out, "
                         f"finish {stats[0]['finish_reason']}, wall {wall:.2f} s")
        entry: dict[str, Any] = {"target": target, "prompt_tokens": len(ids), "runs": runs}
        for path, rows in runs.items():
            entry[path] = {"ttft_s": _med([r["ttft_s"] for r in rows]),
                           "decode_tok_s": _med([r["decode_tok_s"] for r in rows]),
                           "wall_s": _med([r["wall_s"] for r in rows])}
        entry["ratio_ttft"] = _ratio(entry["docanalyst"]["ttft_s"], entry["raw"]["ttft_s"])
        entry["ratio_decode"] = _ratio(entry["docanalyst"]["decode_tok_s"], entry["raw"]["decode_tok_s"])
        self.results["structured"] = entry
        self.save()

    def prefix_reuse(self, target: int) -> None:
        doc, first, build_s = self.doc(target, "prefix", "contract")
        self.log(f"prefix reuse: document of {first.tokens} tokens ({doc.page_count} pages)")
        for name in ("contract", "paper"):  # compile these grammars once (vLLM caches them): steady-state figures
            run_raw(self.engine, [first.token_ids[:2000]], 8, json_schema_for(RESULT_MODELS[name], doc.page_count))
        self.reset_cache()
        rows = []
        plan = [("contract", False), ("paper", False), ("generic", False), ("contract", True), ("paper", True)]
        for name, with_schema in plan:
            t0 = time.perf_counter()
            prompt = build_prompt(doc, load_template(name), self.tokenizer)
            prompt_s = time.perf_counter() - t0
            schema = json_schema_for(RESULT_MODELS[name], doc.page_count) if with_schema else None
            max_tokens = self.args.reuse_max_tokens
            wall, stats = run_docanalyst(self.engine, [prompt.token_ids], max_tokens, schema)
            row = {"template": name, "json_schema": with_schema, **stats[0], "wall_s": round(wall, 3),
                   "prompt_build_s": round(prompt_s, 3), "prefix_tokens": len(prompt.prefix_ids)}
            rows.append(row)
            self.log(f"  {name:8s} schema={with_schema!s:5s}: {row['prompt_tokens']} tokens, cached {row['cached_tokens']}, "
                     f"TTFT {_f(row['ttft_s'])} s, wall {wall:.2f} s")
        cold = rows[0]["ttft_s"]
        self.results["prefix_reuse"] = {
            "target": target,
            "runs": rows,
            "speedup_2nd": _ratio(cold, rows[1]["ttft_s"]),
            "speedup_3rd": _ratio(cold, rows[2]["ttft_s"]),
            "gpu_peak_gib": self.mem.phase(),
        }
        self.save()

    def batch(self, count: int, target: int, repeats: int) -> None:
        ids_list = [self.doc(target, f"batch{i}")[1].token_ids for i in range(count)]
        total_prompt = sum(len(x) for x in ids_list)
        self.log(f"batch: {count} documents, {total_prompt} prompt tokens")
        runs: dict[str, list[dict[str, Any]]] = {"docanalyst": [], "raw": []}
        for rep in range(repeats):
            for path in (("docanalyst", "raw") if rep % 2 == 0 else ("raw", "docanalyst")):
                self.reset_cache()
                fn = run_docanalyst if path == "docanalyst" else run_raw
                wall, stats = fn(self.engine, ids_list, self.args.max_tokens)
                out_tokens = sum(s["completion_tokens"] for s in stats)
                row = {"rep": rep, "wall_s": round(wall, 3), "completion_tokens": out_tokens,
                       "cached_tokens": sum(s["cached_tokens"] for s in stats),
                       "tok_s": round((total_prompt + out_tokens) / wall, 1),
                       "ttft_median_s": _med([s["ttft_s"] for s in stats]),
                       "ttft_max_s": max((s["ttft_s"] or 0) for s in stats)}
                runs[path].append(row)
                self.log(f"  {path:10s} rep {rep}: wall {wall:.2f} s, {row['tok_s']:.0f} tok/s, {out_tokens} out, "
                         f"cached {row['cached_tokens']}")
        entry: dict[str, Any] = {"documents": count, "target_each": target, "prompt_tokens": total_prompt, "runs": runs}
        for path, rows in runs.items():
            entry[path] = {"wall_s": _med([r["wall_s"] for r in rows]), "tok_s": _med([r["tok_s"] for r in rows])}
        entry["ratio_throughput"] = _ratio(entry["docanalyst"]["tok_s"], entry["raw"]["tok_s"])
        entry["gpu_peak_gib"] = self.mem.phase()
        self.results["batch"] = entry
        self.save()

    def kv_from_log(self) -> None:
        path = self.args.engine_log
        if not path or not Path(path).exists():
            return
        text = Path(path).read_text(errors="replace")
        found: dict[str, Any] = {}
        m = re.search(r"KV cache size: ([\d,]+) tokens", text)
        if m:
            found["kv_cache_tokens_log"] = int(m.group(1).replace(",", ""))
        m = re.search(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x", text)
        if m:
            found["max_concurrency_log"] = float(m.group(2))
        m = re.search(r"Model loading took ([\d.]+) GiB", text)
        if m:
            found["model_loading_gib_log"] = float(m.group(1))
        m = re.search(r"torch.compile takes ([\d.]+) s", text)
        if m:
            found["torch_compile_s_log"] = float(m.group(1))
        m = re.search(r"init engine .*? took ([\d.]+) seconds", text)
        if m:
            found["init_engine_s_log"] = float(m.group(1))
        self.results.setdefault("engine", {}).update(found)

    # ---- report ----------------------------------------------------------------------------------------------
    def table(self) -> str:
        r = self.results
        e = r.get("engine", {})
        lines = [
            f"== docanalyst vs raw vLLM == {r['date_utc']} UTC, {r.get('device_name')}, vllm {r.get('vllm')}, "
            f"profile {r['profile']}",
            f"engine start {e.get('start_s')} s, KV cache {e.get('kv_cache_tokens')} tokens, "
            f"GPU used after start {e.get('gpu_used_after_start_gib')} GiB, peak {r.get('gpu_peak_used_gib')} GiB "
            f"of {r.get('gpu_total_gib')} GiB",
            "",
            "| target | prompt tokens | path | n | TTFT s (median) | prefill tok/s | decode tok/s | wall s | "
            "TTFT ratio d/r | decode ratio d/r |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in r["sizes"]:
            for path in ("docanalyst", "raw"):
                if path not in s:
                    continue
                p = s[path]
                lines.append(f"| {s['target']:,} | {s['prompt_tokens']:,} | {path} | {p['n']} | {p['ttft_s']} | "
                             f"{_f(p['prefill_tok_s'], 0)} | {_f(p['decode_tok_s'], 1)} | {p['wall_s']} | "
                             f"{s.get('ratio_ttft', '') if path == 'docanalyst' else ''} | "
                             f"{s.get('ratio_decode', '') if path == 'docanalyst' else ''} |")
        if "structured" in r:
            s = r["structured"]
            lines += ["", f"structured output ({s['prompt_tokens']:,} tokens, contract schema): docanalyst "
                          f"{s['docanalyst']} raw {s['raw']} ratio TTFT {s['ratio_ttft']} decode {s['ratio_decode']}"]
        if "prefix_reuse" in r:
            p = r["prefix_reuse"]
            lines += ["", "| template | json schema | prompt tokens | cached tokens | TTFT s | wall s |", "|---|---|---|---|---|---|"]
            for row in p["runs"]:
                lines.append(f"| {row['template']} | {row['json_schema']} | {row['prompt_tokens']:,} | "
                             f"{row['cached_tokens']:,} | {_f(row['ttft_s'])} | {row['wall_s']} |")
            lines.append(f"speed-up of TTFT: 2nd {p['speedup_2nd']}x, 3rd {p['speedup_3rd']}x (target >= 50x)")
        if "batch" in r:
            b = r["batch"]
            lines += ["", f"batch {b['documents']} x ~{b['target_each']:,} ({b['prompt_tokens']:,} prompt tokens): "
                          f"docanalyst {b['docanalyst']} raw {b['raw']} throughput ratio {b['ratio_throughput']} "
                          "(target >= 0.9)"]
        if r["errors"]:
            lines += ["", "errors:", *r["errors"]]
        return "\n".join(lines)


def parse_size(spec: str) -> tuple[int, str, int]:
    parts = spec.split(":")
    target = int(parts[0].replace("_", "").replace(",", ""))
    paths = parts[1] if len(parts) > 1 and parts[1] else "both"
    if paths not in ("both", "docanalyst", "raw"):
        raise argparse.ArgumentTypeError(f"paths must be both|docanalyst|raw, not {paths!r}")
    repeats = int(parts[2]) if len(parts) > 2 else 1
    return target, paths, repeats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="qwen3-next", help="docanalyst engine profile (qwen3-next, qwen3-next-1m)")
    ap.add_argument("--set", action="append", metavar="FIELD=JSON",
                    help="override a profile field for this run, e.g. gpu_memory_utilization=0.9")
    ap.add_argument("--engine-kwargs", default='{"load_format": "dummy"}',
                    help="JSON of extra vllm.LLM kwargs (docanalyst's VllmEngine overrides)")
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="config.json for the model folder")
    ap.add_argument("--tokenizer-dir", default=str(ASSETS), help="tokenizer.json[.gz], tokenizer_config.json, chat_template.jinja")
    ap.add_argument("--model-dir", default=None, help="where to build the model folder (default: a temp dir)")
    ap.add_argument("--size", action="append", type=parse_size, default=[], metavar="TOKENS[:PATHS[:REPEATS]]")
    ap.add_argument("--prefix-reuse", type=int, default=0, metavar="TOKENS", help="three templates on one document")
    ap.add_argument("--batch", default="", metavar="COUNTxTOKENS", help="e.g. 16x16000")
    ap.add_argument("--batch-repeats", type=int, default=1)
    ap.add_argument("--structured", type=int, default=0, metavar="TOKENS", help="also time the JSON-schema path")
    ap.add_argument("--structured-repeats", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=256, help="output tokens per request (same for both paths)")
    ap.add_argument("--reuse-max-tokens", type=int, default=32)
    ap.add_argument("--warmup-tokens", type=int, default=12000)
    ap.add_argument("--seed", default="0", help="changes every synthetic document")
    ap.add_argument("--order", default="size,structured,prefix,batch",
                    help="phase order (comma list of size, structured, prefix, batch)")
    ap.add_argument("--vllm-log-level", default="INFO", help="VLLM_LOGGING_LEVEL for the engine (INFO shows KV size)")
    ap.add_argument("--engine-log", default=None, help="file holding this run's stderr (to read vLLM's KV-cache line)")
    ap.add_argument("--out", default="gpu_bench_results.json")
    args = ap.parse_args(argv)

    bench = Bench(args)
    try:
        bench.start()
        bench.warmup()
        for phase in args.order.split(","):
            try:
                if phase == "size":
                    for target, paths, repeats in args.size:
                        bench.size(target, paths, repeats)
                elif phase == "structured" and args.structured:
                    bench.structured(args.structured, args.structured_repeats)
                elif phase == "prefix" and args.prefix_reuse:
                    bench.prefix_reuse(args.prefix_reuse)
                elif phase == "batch" and args.batch:
                    count, _, tokens = args.batch.lower().partition("x")
                    bench.batch(int(count), int(tokens), args.batch_repeats)
            except Exception as exc:  # keep what the other phases measured
                import traceback

                traceback.print_exc()
                bench.results["errors"].append(f"{phase}: {type(exc).__name__}: {exc}")
                bench.save()
    except BaseException as exc:
        bench.results["errors"].append(f"fatal: {type(exc).__name__}: {exc}")
        bench.save()
        raise
    finally:
        bench.kv_from_log()
        bench.save()
        print(bench.table(), flush=True)
    engine = getattr(bench, "engine", None)
    if engine is not None:
        engine.close()
    return 1 if bench.results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
