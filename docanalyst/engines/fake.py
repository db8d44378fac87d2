"""A scripted engine, shipped in the package so that the pipeline's control flow (re-ask, truncation, salvage,
storage, cache reuse, batch chunks) can be tested in milliseconds, and so that a new front end can be tried
without a model. It is never proof that extraction works: the engine tests drive the real vLLM engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from docanalyst.engines.base import GenerationRequest, GenerationResult
from docanalyst.errors import EngineError
from docanalyst.profiles import EngineProfile


class FakeEngine:
    """Answers each request with the next scripted ``(text, finish_reason)`` and records every request.

    Usage figures are fixed (7 completion tokens, 0.01 s to the first token) so tests can assert exact totals."""

    def __init__(
        self, profile: EngineProfile, answers: Sequence[tuple[str, str]] = (), *, model_name: str = "scripted"
    ) -> None:
        self.profile = profile
        self.model_name = model_name
        self.answers = list(answers)  # consumed in order
        self.requests: list[GenerationRequest] = []
        self.calls = 0  # generate() calls: how many engine round trips a batch took
        self.closed = False

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if self.closed:
            raise EngineError("the engine was closed")
        self.calls += 1
        out = []
        for request in requests:
            if not self.answers:
                raise EngineError("generation failed: the fake engine has no scripted answer left")
            self.requests.append(request)
            text, reason = self.answers.pop(0)
            out.append(GenerationResult(text, reason, len(request.prompt_token_ids), 0, 7, 0.01, 0.1))
        return out

    def close(self) -> None:
        self.closed = True
