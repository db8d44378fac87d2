"""The template registry: one declaration per template, everything else derived from it (see spec.py)."""

from pathlib import Path

from docanalyst.errors import TemplateError
from docanalyst.templates.dump import dump_template
from docanalyst.templates.models import FieldSpec
from docanalyst.templates.registry import (
    BUILTIN_NAMES,
    Template,
    builtins,
    get_template,
    list_templates,
    load_file,
    scan_home,
    templates_home,
)
from docanalyst.templates.spec import TemplateSpec

__all__ = [
    "BUILTIN_NAMES",
    "FieldSpec",
    "Template",
    "TemplateError",
    "TemplateSpec",
    "builtins",
    "check_template_file",
    "dump_template",
    "get_template",
    "list_templates",
    "load_file",
    "scan_home",
    "templates_home",
]


def check_template_file(path: Path) -> Template:
    """Read and validate a template file, and refuse it (TemplateError, one line) when its answer could pass a
    profile's output limit: what `docanalyst templates check` does before it prints the numbers."""
    from docanalyst.templates.limits import answer_tokens

    template = load_file(Path(path))
    answer_tokens(template)
    return template
