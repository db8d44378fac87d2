"""End to end in a real browser: `docanalyst ui` as a server, headless Debian Chromium driven by Playwright
(the system binary, no browser download), the real embedded engine on the CPU.

Needs the Debian packages chromium and chromium-driver and the playwright package (scripts/setup.sh installs
them). DOCANALYST_UI_SCREENSHOTS=docs also saves the review workspace there (docs/ui-review.png).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from docanalyst.revisions import revisions_of
from docanalyst.store import Store

from conftest import ROOT

# A user template no built-in resembles, uploaded in the sidebar, on its sample agreement: the page, the run and the
# confidences are the real embedded engine's.
NDA_TEMPLATE = ROOT / "samples" / "templates" / "nda.yaml"
NDA_PDF = ROOT / "samples" / "harborpeak-quillon-nda.pdf"
CORRECTED = "the laws of Delaware (reviewed)"

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1200)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_S = 120  # Streamlit itself; the engine loads later, in the background
ENGINE_AND_RUN_S = 900  # engine start (about 40 s on 2 free cores, minutes on a busy machine) + one extraction


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(base_settings, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`docanalyst ui` on a free port with its own database; stopped (with its engine process) afterwards."""
    port = free_port()
    db_url = f"sqlite:///{tmp_path / 'ui.db'}"
    home = tmp_path / "home"  # uploads are saved here; the installed models are seen through a link
    home.mkdir()
    (home / "models").symlink_to(base_settings.models_dir, target_is_directory=True)
    env = {
        **os.environ,
        "DOCANALYST_HOME": str(home),
        "DOCANALYST_DB": db_url,
        "DOCANALYST_CPU_KV_GIB": os.environ.get("DOCANALYST_CPU_KV_GIB", "1"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DOCANALYST_PROFILE", None)
    log = (tmp_path / "server.log").open("wb")
    command = [sys.executable, "-m", "docanalyst.cli", "ui", "--server.headless", "true", "--server.port", str(port)]
    command += ["--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    command += ["--server.fileWatcherType", "none"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`docanalyst ui` exited with {proc.returncode}:\n{(tmp_path / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer within {SERVER_START_S} s")
            time.sleep(0.5)
        yield url, db_url
        # SIGTERM to `docanalyst ui` alone (as a service manager sends it), with the engine loaded by the test: it
        # passes the signal on, and nothing of its process group (Streamlit, the engine core) is left behind.
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=90)
        eventually(lambda: not left_in_group(proc.pid), timeout_s=30)
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever a failure left: the whole group
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        log.close()


def left_in_group(pgid: int) -> list[str]:
    """The live processes of a process group (zombies aside), by command line."""
    import psutil

    left = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if os.getpgid(p.info["pid"]) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                left.append(" ".join(p.info["cmdline"] or [])[:120])
    return left


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail("Debian chromium is not installed: run `bash scripts/setup.sh` (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run `bash scripts/setup.sh` (the dev extra)")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile every time
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1440, "height": 1100},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def eventually(check, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Streamlit draws in several passes: wait (bounded) until the condition holds."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out waiting for the page"
        time.sleep(0.5)


def save_screenshot(page, path: Path) -> None:  # type: ignore[no-untyped-def]
    """The whole page (Streamlit scrolls inside its main pane, so the window is made as tall as the content
    first), reduced to a 256-colour palette so it stays small enough to commit."""
    from PIL import Image

    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height), size["height"]), 6000)})
    time.sleep(1.5)
    raw = path.with_suffix(".raw.png")
    page.screenshot(path=str(raw), full_page=True)
    page.set_viewport_size(size)
    with Image.open(raw) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    raw.unlink()


def add_template_and_document(page, analyse) -> None:  # type: ignore[no-untyped-def]
    """Upload the NDA template in the sidebar, then its agreement; wait until its budget says it fits."""
    page.locator("[data-testid=stSidebar] input[type=file]").first.set_input_files(str(NDA_TEMPLATE))
    page.get_by_text("Using the uploaded template 'nda'").wait_for()
    analyse.locator("input[type=file]").first.set_input_files(str(NDA_PDF))
    run = page.get_by_role("button", name="Analyse 1 document(s)")
    run.wait_for()
    assert run.is_enabled()
    # The tables are canvas grids; their cells are also in the page as (hidden) accessible grid cells.
    budget = analyse.locator("[role=gridcell]")
    eventually(lambda: budget.filter(has_text="harborpeak-quillon-nda.pdf").count() == 1)
    eventually(lambda: budget.filter(has_text="✓ fits").count() == 1)


def check_results(page, analyse) -> None:  # type: ignore[no-untyped-def]
    """The workspace: the NDA's fields as a list beside the page, the run's evidence verdict, the exports."""
    assert analyse.locator("[data-testid=stException]").count() == 0
    fields = analyse.get_by_role("button").filter(has_text="Governing law")
    eventually(lambda: fields.count() >= 1)
    eventually(lambda: analyse.get_by_role("button").filter(has_text="Disclosing party").count() >= 1)  # the NDA's
    assert analyse.get_by_text("value(s) backed by a quote found in the document").count() >= 1
    # the page of the preselected field, drawn beside the fields
    image = analyse.locator("[data-testid=stImage] img").first
    image.wait_for()
    eventually(lambda: page.evaluate("(img) => img.complete && img.naturalWidth > 300", image.element_handle()))
    eventually(lambda: analyse.get_by_role("button", name="Export JSON").count() >= 1)  # drawn after the page
    eventually(lambda: analyse.get_by_role("button", name="Export CSV").count() >= 1)


def correct_governing_law(page, analyse) -> None:  # type: ignore[no-untyped-def]
    """Open the field's evidence beside the page, then correct its value in the review form."""
    analyse.get_by_role("button").filter(has_text="Governing law").first.click()
    analyse.get_by_text("(governing_law)").first.wait_for()  # its details: label and path
    eventually(lambda: " of 2" in analyse.inner_text() and "Model's value:" in analyse.inner_text())
    form = analyse.locator("[data-testid=stForm]").filter(has_text="Save review").first
    form.get_by_text("Edit", exact=True).click()
    form.get_by_label("Correct value (for Edit)").fill(CORRECTED)
    form.get_by_label("Reviewer").fill("browser-test")
    form.get_by_role("button", name="Save review").click()
    analyse.get_by_text(f"Reviewed: corrected to {CORRECTED} by browser-test").wait_for()


def exported(page, analyse) -> dict:  # type: ignore[no-untyped-def]
    """What the Export JSON button downloads."""
    with page.expect_download() as download:
        analyse.get_by_role("button", name="Export JSON").first.click()
    return json.loads(Path(download.value.path()).read_text("utf-8"))


def test_upload_review_reload_and_export_in_chromium(server, browser_page, tmp_path: Path) -> None:
    """Done-when of issue 17: upload, open a field's evidence beside the page, correct it, reload: the run and the
    correction are still there; the export carries the correction and the model's original value."""
    url, db_url = server
    page = browser_page
    page.set_default_timeout(60_000)
    try:
        page.goto(url)
        page.get_by_text("Whole-document extraction with evidence").wait_for()
        analyse = page.get_by_role("tabpanel", name="Analyse")
        add_template_and_document(page, analyse)
        page.get_by_role("button", name="Analyse 1 document(s)").click()
        # the engine starts in the background, then the one-pass extraction: the results section appears
        analyse.get_by_text("4 · Results").wait_for(timeout=ENGINE_AND_RUN_S * 1000)
        check_results(page, analyse)
        correct_governing_law(page, analyse)
        image = analyse.locator("[data-testid=stImage] img").first  # the page again, after the review's rerun
        eventually(lambda: page.evaluate("(img) => img.complete && img.naturalWidth > 300", image.element_handle()))
        time.sleep(1.0)
        save_screenshot(page, tmp_path / "ui-review.png")

        page.reload()  # the run comes back from the database through the address (?run=1)
        assert page.url.endswith("?run=1"), page.url
        analyse = page.get_by_role("tabpanel", name="Analyse")
        analyse.get_by_text("4 · Results").wait_for()
        edited = analyse.get_by_role("button").filter(has_text="✎ edited")
        eventually(lambda: edited.count() == 1)
        edited.first.click()
        analyse.get_by_text(f"Reviewed: corrected to {CORRECTED} by browser-test").wait_for()
        record = exported(page, analyse)  # one run: one record
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise

    folder = os.environ.get("DOCANALYST_UI_SCREENSHOTS")  # docs/: the workspace as a new user sees it
    if folder:
        shutil.copyfile(tmp_path / "ui-review.png", ROOT / folder / "ui-review.png")

    law = next(f for f in record["fields"] if f["path"] == "governing_law")
    assert law["review"]["action"] == "edited" and law["review"]["value"] == CORRECTED
    assert law["review"]["reviewer"] == "browser-test" and law["value"] != CORRECTED  # the model's, kept
    assert record["document"]["path"] == NDA_PDF.name  # the file's name, not the server's upload path

    # what the browser showed is what was stored
    store = Store(db_url)
    runs = store.list_runs(5)
    assert len(runs) == 1 and runs[0][0].profile == "embedded" and runs[0][0].template == "nda"
    loaded = store.get_run(runs[0][0].id or 0)
    assert loaded is not None and "governing_law" in [f.path for f in loaded[2]]
    assert all(f.confidence is not None and 0.0 <= f.confidence <= 1.0 for f in loaded[2])
    assert Path(loaded[1].path).read_bytes() == NDA_PDF.read_bytes()  # the upload, kept for page images
    assert Path(loaded[1].path).is_relative_to(tmp_path / "home" / "uploads")
    [revision] = revisions_of(store, [runs[0][0].id or 0])[runs[0][0].id or 0]
    assert (revision.path, revision.action, revision.value) == ("governing_law", "edited", CORRECTED)
