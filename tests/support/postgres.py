"""A throwaway PostgreSQL server for the test session, from the machine's own binaries.

When ``CONTROLPLANE_TEST_POSTGRES_URL`` names a server (an admin URL that may create
databases), that server is used instead. Otherwise ``initdb`` + ``pg_ctl`` start one on a
free loopback port in a temporary directory, as the ``postgres`` user when run as root
(PostgreSQL refuses to run as root), with fsync off: the data is thrown away anyway.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from controlplane.db import normalize_url
from controlplane.simulate.process import free_port


class PostgresUnavailableError(RuntimeError):
    pass


def find_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise PostgresUnavailableError(
        "no PostgreSQL server binaries (initdb, pg_ctl) found: run `make deps` (installs "
        "Debian's postgresql package) or set CONTROLPLANE_TEST_POSTGRES_URL to a server"
    )


def _run(args: list[str], *, user: str | None) -> None:
    command = ["runuser", "-u", user, "--", *args] if user else args
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise PostgresUnavailableError(
            f"{' '.join(args[:2])} failed ({result.returncode}): {result.stderr[-2000:]}"
        )


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an admin SQLAlchemy URL of a running PostgreSQL server."""
    external = os.environ.get("CONTROLPLANE_TEST_POSTGRES_URL")
    if external:
        yield normalize_url(external).render_as_string(hide_password=False)
        return
    bindir = find_bindir()
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError as error:
            raise PostgresUnavailableError(
                "running as root and no 'postgres' user exists to run the server: "
                "run `make deps` (Debian's postgresql package creates it)"
            ) from error
        user = "postgres"
    root = Path(tempfile.mkdtemp(prefix="controlplane-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if user:
        shutil.chown(root, user)
        shutil.chown(sockets, user)
    port = free_port()
    _run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        user=user,
    )
    options = f"-p {port} -k {sockets} -h 127.0.0.1 -F -c max_connections=300"
    _run(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        user=user,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], user=user)
        shutil.rmtree(root, ignore_errors=True)


def database_url(admin_url: str, name: str) -> str:
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def create_database(admin_url: str, name: str, *, template: str | None = None) -> str:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            clause = f' TEMPLATE "{template}"' if template else ""
            connection.execute(sa.text(f'CREATE DATABASE "{name}"{clause}'))
    finally:
        engine.dispose()
    return database_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@dataclass
class RestartablePostgres:
    """A throwaway server of our own that can be crashed, stopped and started again."""

    url: str
    bindir: Path
    data: Path
    user: str | None

    def _ctl(self, *args: str) -> None:
        logfile = str(self.data.parent / "log")  # without one, the server holds our pipes
        _run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", logfile, *args],
            user=self.user,
        )

    def restart(self) -> None:
        """An immediate stop (no checkpoint: a crash), then a start with crash recovery;
        restart reuses the options of the last start (postmaster.opts): port, sockets."""
        self._ctl("-m", "immediate", "-w", "-t", "60", "restart")

    def stop(self) -> None:
        self._ctl("-m", "immediate", "-w", "stop")

    def start(self) -> None:
        """Start it as it was last started (pg_ctl start alone does not read the options
        postmaster.opts keeps: the port, the sockets' folder)."""
        argv = shlex.split((self.data / "postmaster.opts").read_text())[1:]
        options = [a for i, a in enumerate(argv) if "-D" not in (a, argv[i - 1] if i else "")]
        self._ctl("-o", shlex.join(options), "-w", "-t", "60", "start")


@contextmanager
def restartable_postgres() -> Iterator[RestartablePostgres]:
    """A server of our own (never CONTROLPLANE_TEST_POSTGRES_URL's: it gets stopped)."""
    previous = os.environ.pop("CONTROLPLANE_TEST_POSTGRES_URL", None)
    try:
        with postgres_server() as admin:
            engine = sa.create_engine(admin)
            try:
                with engine.connect() as connection:
                    data = Path(str(connection.execute(sa.text("SHOW data_directory")).scalar()))
            finally:
                engine.dispose()
            user = "postgres" if os.geteuid() == 0 else None
            yield RestartablePostgres(admin, find_bindir(), data, user)
    finally:
        if previous is not None:
            os.environ["CONTROLPLANE_TEST_POSTGRES_URL"] = previous
