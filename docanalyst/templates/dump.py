"""A template written back in the file format users write: `docanalyst templates show NAME`.

Bounds, shapes and kinds are written out even where they are the defaults, so a user who starts from a copy
of a built-in sees every knob; reading the dump back gives the same declaration (same hash).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from docanalyst.templates.registry import Template
from docanalyst.templates.spec import FieldDef

HEADER = (
    "# docanalyst template{origin}. To make your own: copy this file, change `name`, edit the fields, then\n"
    "# run `docanalyst templates check FILE`; use it with --template FILE, or by name from "
    "DOCANALYST_HOME/templates/.\n"
)
FORMATS = ("yaml", "json")


class _Dumper(yaml.SafeDumper):
    """Block style with indented lists, as people write YAML; a list of plain names (a group) on one line."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = bool(data) and all(isinstance(item, str) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _list)


def _field(field: FieldDef) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": field.name,
        "description": field.description,
        "shape": field.shape,
        "kind": field.kind,
        "max_length": field.max_length,
    }
    if field.many:
        entry["max_items"] = field.items
    if field.item:
        entry["item"] = field.item
    if field.extra:
        entry["extra"] = [
            {"name": s.name, **({"description": s.description} if s.description else {}), "max_length": s.max_length}
            for s in field.extra
        ]
    return entry


def as_data(template: Template) -> dict[str, Any]:
    """The declaration as plain data, keys in the order a person reads them."""
    spec = template.spec
    data: dict[str, Any] = {
        "name": spec.name,
        "label": spec.label,
        "version": spec.version,
        "task": spec.task,
        "fields": [_field(f) for f in spec.fields],
    }
    if spec.groups:
        data["groups"] = [list(group) for group in spec.groups]
    return data


def dump_template(template: Template, fmt: str = "yaml") -> str:
    """The template as a ``.yaml`` (with a how-to header) or ``.json`` file's text."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    data = as_data(template)
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    origin = " (built-in)" if template.builtin else ""
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110, default_flow_style=False)
    return HEADER.format(origin=origin) + body
