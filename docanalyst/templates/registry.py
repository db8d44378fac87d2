"""Every template, built-in or a user's file, as one ``Template``: found by name or path, listed, dumped.

Built-ins are files in the user format (templates/builtin/*.yaml), read once. A user's template is a YAML or
JSON file given by path (``--template nda.yaml``) or by name from ``DOCANALYST_HOME/templates/``. A file is
re-read on every lookup (a long-lived web app must see the edit a user just saved); parsing and building its
model are cached by the file's text. ``Template.sha256`` hashes the canonical declaration: stored runs carry
it and the run cache matches on it, so an edited template never reuses the answer to the old one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from docanalyst.errors import TemplateError
from docanalyst.templates.errors import describe
from docanalyst.templates.models import FieldSpec, field_specs, result_model
from docanalyst.templates.spec import TemplateSpec

BUILTIN_DIR = Path(__file__).parent / "builtin"
BUILTIN_NAMES = ("contract", "paper", "generic")
SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 256 * 1024
BUILTIN = "built-in"
_INDEX = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)(?:\[(?P<index>\d+)\])?")


@dataclass(frozen=True, eq=False)
class Template:
    """One declaration and what is derived from it. ``source`` is "built-in" or the file it came from."""

    spec: TemplateSpec
    source: str = BUILTIN
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        canonical = json.dumps(self.spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        object.__setattr__(self, "sha256", hashlib.sha256(canonical.encode()).hexdigest()[:16])

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def builtin(self) -> bool:
        return self.source == BUILTIN

    @cached_property
    def result_model(self) -> type[BaseModel]:
        return result_model(self.spec, self.sha256)

    @cached_property
    def field_specs(self) -> dict[str, FieldSpec]:
        return field_specs(self.spec)

    def field_label(self, path: str) -> str:
        """``parties[1]`` -> ``Parties 2``; ``governing_law`` -> ``Governing law``: a field path for people."""
        match = _INDEX.match(path)
        if match is None or match["name"] not in self.field_specs:
            return path
        label = match["name"].replace("_", " ").capitalize()
        index = match["index"]
        rest = path[match.end() :]
        return f"{label} {int(index) + 1}{rest}" if index is not None else f"{label}{rest}"


def _parse(text: str, suffix: str) -> Any:
    """YAML (a superset of JSON) or strict JSON; a syntax error as one line with its position."""
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "cannot be read"
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ValueError(f"not valid YAML ({at}{problem})") from None


@lru_cache(maxsize=64)
def _from_text(text: str, suffix: str, shown: str) -> Template:
    try:
        data = _parse(text, suffix)
    except ValueError as exc:
        raise TemplateError(str(exc), path=shown) from None
    if not isinstance(data, dict):
        raise TemplateError("must be a mapping of template settings (name, label, task, fields, ...)", path=shown)
    try:
        spec = TemplateSpec.model_validate(data)
    except ValidationError as exc:
        raise TemplateError(describe(exc, TemplateSpec), path=shown) from None
    return Template(spec, source=shown)


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise TemplateError(f"too large for a template (over {MAX_FILE_BYTES // 1024} KiB)", path=path)
        return path.read_text("utf-8")
    except FileNotFoundError:
        raise TemplateError("no such template file", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise TemplateError(f"cannot read the template: {reason}", path=path) from None


def load_file(path: Path) -> Template:
    """A user's template file, validated. Built-in names are refused: runs are listed and compared by name."""
    if path.suffix.lower() not in SUFFIXES:
        raise TemplateError("a template file ends in .yaml, .yml or .json", path=path)
    template = _from_text(_read(path), path.suffix.lower(), str(path))
    if template.name in BUILTIN_NAMES:
        raise TemplateError(f"name: '{template.name}' is a built-in template; choose another name", path=path)
    return template


@lru_cache(maxsize=1)
def builtins() -> tuple[Template, ...]:
    """contract, paper, generic, read from their files once."""
    loaded = []
    for name in BUILTIN_NAMES:
        path = BUILTIN_DIR / f"{name}.yaml"
        loaded.append(Template(_from_text(path.read_text("utf-8"), ".yaml", str(path)).spec))
    return tuple(loaded)


def templates_home(home: Path | None = None) -> Path:
    """``DOCANALYST_HOME/templates``: where ``--template NAME`` finds a user's template."""
    if home is None:
        from docanalyst.config import Settings

        home = Settings.from_env().home
    return home / "templates"


def _home_file(folder: Path, name: str) -> Path | None:
    return next((folder / f"{name}{s}" for s in SUFFIXES if (folder / f"{name}{s}").is_file()), None)


def _named(path: Path) -> Template:
    """A template of the home folder: its ``name`` must be its file name, or ``-t NAME`` could not find it."""
    template = load_file(path)
    if template.name != path.stem:
        raise TemplateError(f"name: '{template.name}' differs from the file's name '{path.stem}'", path=path)
    return template


def scan_home(home: Path | None = None) -> tuple[list[Template], list[TemplateError]]:
    """The home folder's templates by name, and the files there that are not usable (with why)."""
    folder = templates_home(home)
    found: list[Template] = []
    problems: list[TemplateError] = []
    if not folder.is_dir():
        return found, problems
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file()):
        try:
            found.append(_named(path))
        except TemplateError as exc:
            problems.append(exc)
    return found, problems


def list_templates(home: Path | None = None) -> list[Template]:
    """Built-ins first, then the usable templates of ``DOCANALYST_HOME/templates`` by name."""
    return [*builtins(), *scan_home(home)[0]]


def _looks_like_path(ref: str) -> bool:
    """A template's name has no dot and no slash (spec.IDENTIFIER): anything with one is a file."""
    return any(c in ref for c in "./\\")


def get_template(ref: str, home: Path | None = None) -> Template:
    """A built-in name, a name from ``DOCANALYST_HOME/templates/``, or a path to a .yaml/.yml/.json file."""
    for template in builtins():
        if template.name == ref:
            return template
    if _looks_like_path(ref):
        return load_file(Path(ref).expanduser())
    folder = templates_home(home)
    path = _home_file(folder, ref)
    if path is not None:
        return _named(path)
    names = [t.name for t in list_templates(home)]
    raise TemplateError(
        f"unknown template {ref!r}; choose one of: {', '.join(names)}, or give a .yaml/.json file "
        f"(your own templates by name live in {folder})"
    )
