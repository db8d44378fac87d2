"""Command line: ``docanalyst extract|batch|ask|tokens|list|show|export|eval|templates|models|ui|serve``.

One module per command group (reading.py: extract/ask/tokens; batch.py; runs.py: list/show/export; evals.py;
models.py; ui.py; templates.py; serve.py), the options they share declared once (options.py), what they print in
tables.py, and the edge where every error becomes one line and an exit code (edge.py). This module only builds
the app: the root options (``--version``, the one ``--debug``) and which function answers which name.

``main`` is the console script (``docanalyst = "docanalyst.cli:main"``); ``app`` is what tests invoke in-process.
"""

from __future__ import annotations

from typing import Annotated

import typer

from docanalyst import __version__
from docanalyst.cli import batch as batch_cmd
from docanalyst.cli import evals, reading, review, runs
from docanalyst.cli import serve as serve_cmd
from docanalyst.cli.common import out
from docanalyst.cli.edge import main, set_debug, stdout_to_stderr
from docanalyst.cli.models import models_app
from docanalyst.cli.options import TemplateHelpCommand
from docanalyst.cli.templates import templates_app
from docanalyst.cli.ui import ui

__all__ = ["app", "main", "stdout_to_stderr"]

app = typer.Typer(
    name="docanalyst",
    help="Whole-document, single-pass structured extraction from PDFs (in-process vLLM).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show tracebacks and engine logs (also after the command).",
            callback=set_debug,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Whole-document, single-pass structured extraction from PDFs (in-process vLLM)."""
    if version:
        out().print(f"docanalyst {__version__}")
        raise typer.Exit(0)


app.command(cls=TemplateHelpCommand)(reading.extract)
app.command(cls=TemplateHelpCommand)(batch_cmd.batch)
app.command(cls=TemplateHelpCommand)(reading.ask)
app.command(cls=TemplateHelpCommand)(reading.tokens)
app.command("list")(runs.list_runs)
app.command()(runs.show)
app.command()(runs.export)
app.command()(review.review)
app.add_typer(evals.eval_app, name="eval")
# The names from before the sub-app, hidden from --help: `eval-list` is `eval list`, and so on.
app.command("eval-list", hidden=True, help="Alias of `docanalyst eval list`.")(evals.list_)
app.command("eval-show", hidden=True, help="Alias of `docanalyst eval show`.")(evals.show)
app.command("eval-compare", hidden=True, help="Alias of `docanalyst eval compare`.")(evals.compare)
app.add_typer(models_app, name="models")
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(ui)
app.add_typer(templates_app, name="templates")
app.command()(serve_cmd.serve)
