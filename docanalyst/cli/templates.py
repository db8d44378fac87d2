"""``templates list | show NAME | check FILE``: the templates a user can name, each in its file format, and a
check of a user's file before it is used.

``show`` prints the very format users write (built-ins included), as plain text (not through Rich, which would
read ``[a, b]`` as markup), so ``docanalyst templates show contract > mine.yaml`` is a working start. ``check``
says ``ok`` with the field count and the answer's worst case per profile, or one ``error:`` line (exit 2,
through the CLI's edge like every DocanalystError).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from docanalyst.cli.common import emit_json, err, out, path_text, safe_text, settings
from docanalyst.cli.options import JsonOpt
from docanalyst.templates import Template, dump_template, get_template, scan_home
from docanalyst.templates.limits import answer_tokens

templates_app = typer.Typer(
    help="List, show and check extraction templates (built-in and your own YAML/JSON files).",
    no_args_is_help=True,
)


class DumpFormat(StrEnum):
    yaml = "yaml"
    json = "json"


def _row(template: Template) -> dict[str, object]:
    return {
        "name": template.name,
        "label": template.label,
        "version": template.version,
        "fields": len(template.spec.fields),
        "source": template.source,
        "sha256": template.sha256,
    }


@templates_app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """The built-in templates and those in DOCANALYST_HOME/templates (a file there that is not usable is named,
    with why, on stderr)."""
    from docanalyst.templates import builtins

    home = settings().home
    found, problems = scan_home(home)
    templates = [*builtins(), *found]
    if as_json:
        emit_json([_row(t) for t in templates])
    else:
        table = Table(title="templates")
        for column in ("name", "version", "fields", "source", "about"):
            table.add_column(column)
        for t in templates:
            source = t.source if t.builtin else path_text(t.source)
            table.add_row(t.name, str(t.version), str(len(t.spec.fields)), source, safe_text(t.label))
        out().print(table)
    for problem in problems:
        err().print(f"skipped: {safe_text(problem)}")


@templates_app.command()
def show(
    name: Annotated[str, typer.Argument(help="A template's name, or a template file.")],
    fmt: Annotated[DumpFormat, typer.Option("--format", "-f", help="yaml (default) or json.")] = DumpFormat.yaml,
) -> None:
    """Print a template in the file format you write your own in: start from a copy."""
    template = get_template(name, settings().home)
    sys.stdout.write(dump_template(template, fmt.value))
    sys.stdout.flush()


@templates_app.command()
def check(file: Annotated[Path, typer.Argument(help="The template file (.yaml, .yml or .json).")]) -> None:
    """Read and check a template file: ``ok`` with its fields and the answer's worst case per profile, or one
    line naming the key and the problem (exit 2)."""
    from docanalyst.templates import load_file

    template = load_file(file)
    tokens = answer_tokens(template, settings().models_dir)
    per_profile = ", ".join(f"{name} {count:,}" for name, count in tokens.items())
    fields = len(template.spec.fields)
    out().print(
        f"ok: {path_text(file)}: template '{template.name}' v{template.version}, {fields} field"
        f"{'' if fields == 1 else 's'}; answer at most {per_profile} tokens"
    )
