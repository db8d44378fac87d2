"""A throw-away PostgreSQL server for the store tests: a real cluster in a temporary folder, on a free loopback
port, started from Debian's binaries (``postgresql`` package) and stopped when the test session ends.

PostgreSQL refuses to run as root, so under root the cluster belongs to ``nobody``. Each test gets a database of
its own (``fresh_database``), so tests never see each other's rows. Nothing is mocked: the store talks to the
server through psycopg, as a user's ``--db postgresql+psycopg://…`` would.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from conftest import free_port

USER = "docanalyst"


def binaries() -> Path | None:
    """The folder of initdb/pg_ctl: on PATH, else Debian's versioned folder (the newest)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    return Path(folders[-1]) if folders else None


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "nobody", "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str]) -> None:
    done = subprocess.run(_as_owner(argv), capture_output=True, text=True, cwd="/")
    if done.returncode:
        raise RuntimeError(f"{Path(argv[0]).name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


@contextlib.contextmanager
def server() -> Iterator[str]:
    """Start a cluster in a new temporary folder (one ``nobody`` can enter: pytest's own are root's, mode 0700);
    yield the URL of its ``postgres`` database; stop it (immediately) and remove the folder after."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed: `apt-get install postgresql` (scripts/setup.sh does it)")
    folder = Path(tempfile.mkdtemp(prefix="docanalyst-pg-"))
    data, sockets = folder / "data", folder / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody")
        shutil.chown(sockets, "nobody")
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"])
        port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off -c max_connections=60"
        log = str(folder / "server.log")
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start"])
        try:
            yield f"postgresql+psycopg://{USER}@127.0.0.1:{port}/postgres"
        finally:
            with contextlib.suppress(RuntimeError):
                _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """A new, empty database on the server; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
