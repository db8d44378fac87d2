"""The fake engine for fast tests now ships in the package (docanalyst.engines.fake); this name stays for the
tests that import it from here."""

from __future__ import annotations

from docanalyst.engines.fake import FakeEngine as ScriptedEngine

__all__ = ["ScriptedEngine"]
