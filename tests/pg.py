"""A throwaway PostgreSQL server for the tests (Debian's PostgreSQL 15 binaries).

The tests run as root and PostgreSQL refuses to, so ``initdb``, ``pg_ctl`` and ``createdb`` run
as the ``postgres`` user (``runuser -u postgres --``) on a data directory it owns, in a fresh
temporary directory; ``fsync=off`` (nothing here must survive a power cut), a free port on
127.0.0.1, the unix socket in the same temporary directory, ``trust`` authentication for local
connections only. :func:`start` raises :class:`Unavailable` with the reason when the binaries
are missing or the server cannot start; the fixture turns that (and only that) into a skip.

The binaries: ``SELFHEAL_PG_BIN``, else Debian's ``/usr/lib/postgresql/15/bin``, else the newest
``/usr/lib/postgresql/*/bin`` (a CI runner's). With ``SELFHEAL_TEST_PG_URL`` set (a CI service
container) no server is started: :class:`External` makes the databases on that one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

USER = "postgres"


def _bin() -> Path:
    if os.environ.get("SELFHEAL_PG_BIN"):
        return Path(os.environ["SELFHEAL_PG_BIN"])
    debian = Path("/usr/lib/postgresql/15/bin")
    if (debian / "initdb").is_file():
        return debian
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return found[-1].parent if found else debian


BIN = _bin()


class Unavailable(RuntimeError):
    """PostgreSQL cannot run here (the reason is the message)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", USER, "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + args, capture_output=True, text=True, timeout=120, check=False, **kwargs)  # type: ignore[call-overload]


@dataclass
class Server:
    """A running throwaway server: :meth:`new_database` gives each test its own database."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres") -> str:
        """The URL of a database on this server (user ``postgres``, no password: trust)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        done = _as_postgres([str(BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), name])
        if done.returncode != 0:
            raise RuntimeError(f"createdb failed: {done.stderr.strip()}")
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its files."""
        _as_postgres([str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class External:
    """A server someone else runs (``SELFHEAL_TEST_PG_URL``, a superuser's URL)."""

    admin_url: str

    def new_database(self) -> str:
        """A fresh empty database; its URL (the admin URL with another database name)."""
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        info = conninfo_to_dict(self.admin_url)
        user, password = info.get("user", USER), f":{info['password']}" if info.get("password") else ""
        host, port = info.get("host", "localhost"), info.get("port", "5432")
        return f"postgresql://{user}{password}@{host}:{port}/{name}"

    def stop(self) -> None:
        """Nothing to stop (the databases go with the service container)."""


def start() -> Server | External:
    """Initialise and start a server in a new temporary directory (see the module doc)."""
    if os.environ.get("SELFHEAL_TEST_PG_URL"):
        return External(os.environ["SELFHEAL_TEST_PG_URL"])
    for tool in ("initdb", "pg_ctl", "createdb"):
        if not (BIN / tool).is_file():
            raise Unavailable(f"PostgreSQL binaries not found: {BIN / tool} (apt-get install postgresql)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise Unavailable("running as root and runuser is missing: cannot start PostgreSQL as postgres")
    root = Path(tempfile.mkdtemp(prefix="selfheal-pg-"))
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        shutil.chown(root, USER, USER)
    server = Server(root, _free_port())
    done = _as_postgres(
        [str(BIN / "initdb"), "-D", str(server.data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"]
    )
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise Unavailable(f"initdb failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    options = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    done = _as_postgres(
        [
            str(BIN / "pg_ctl"),
            "-D",
            str(server.data),
            "-l",
            str(root / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        ]
    )
    if done.returncode != 0:
        log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise Unavailable(f"pg_ctl start failed: {(done.stderr or log).strip().splitlines()[-1:]}")
    return server
