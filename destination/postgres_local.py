"""A throwaway local PostgreSQL server for tests, benchmarks and local runs.

``LocalPostgres.start()`` runs ``initdb`` into a fresh temporary folder and starts ``postgres`` on
a free loopback port, with its Unix socket in that folder, and ``stop()`` removes it all. The
binaries come from Debian's ``postgresql`` package (``/usr/lib/postgresql/N/bin``; ``make test``
installs it when it is missing) or from ``PATH``. PostgreSQL refuses to run as root, so as root
the cluster belongs to the ``postgres`` system user the Debian package creates, and the server
runs as that user (``subprocess.Popen(user=...)``).

Shipped in the package beside the adapter, like ``buffer.opensearch_local``, so the contract
suite, the adapter's tests, the benchmarks and ``make chaos`` start the server the same way. The
Lambdas never import this module.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import ConfigError

HOW_TO_GET_ONE = (
    "no PostgreSQL server binaries found (initdb/postgres): install Debian's postgresql package "
    "(apt-get install postgresql; `make test` does it as root) or put a PostgreSQL bin folder on "
    "PATH"
)


def server_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``: the newest Debian cluster version, or the
    one on ``PATH``; None when neither exists."""

    def version(initdb: str) -> int:
        name = Path(initdb).parent.parent.name
        return int(name) if name.isdigit() else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class LocalPostgres:
    """A running throwaway cluster. ``url()`` names a database on it (created on demand)."""

    root: Path
    port: int
    bin_dir: Path
    run_as: str | None
    process: subprocess.Popen[bytes] | None = None
    databases: set[str] = field(default_factory=set)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def user(self) -> str:
        return "postgres" if self.run_as else pwd.getpwuid(os.getuid()).pw_name

    def url(self, database: str = "postgres") -> str:
        if database != "postgres" and database not in self.databases:
            self.create_database(database)
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, *, startup_timeout: float = 60.0) -> LocalPostgres:
        """initdb and start a cluster; ``ConfigError`` with how to get one when no server exists."""
        bin_dir = server_bin_dir()
        if bin_dir is None:
            raise ConfigError(HOW_TO_GET_ONE)
        run_as: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ConfigError(
                    "running as root and there is no 'postgres' user to run the server as "
                    "(PostgreSQL refuses root; Debian's postgresql package creates that user)"
                ) from None
            run_as = "postgres"
        root = Path(tempfile.mkdtemp(prefix="qldb-settle-pg-"))
        if run_as:
            entry = pwd.getpwnam(run_as)
            os.chown(root, entry.pw_uid, entry.pw_gid)
            root.chmod(0o700)
        server = cls(root=root, port=_free_port(), bin_dir=bin_dir, run_as=run_as)
        try:
            server._initdb()
            server._launch(startup_timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _as_user(self) -> dict[str, Any]:
        """Popen arguments that run the server as ``run_as`` (PostgreSQL refuses root)."""
        if not self.run_as:
            return {}
        entry = pwd.getpwnam(self.run_as)
        return {
            "user": entry.pw_uid,
            "group": entry.pw_gid,
            "extra_groups": [],
            "env": {**os.environ, "HOME": entry.pw_dir, "USER": self.run_as},
        }

    def _initdb(self) -> None:
        args = [
            str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.user,
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        ]  # fmt: skip
        result = subprocess.run(
            args, capture_output=True, check=False, cwd=self.root, **self._as_user()
        )
        if result.returncode != 0:
            raise ConfigError(f"initdb failed: {result.stderr.decode(errors='replace')[-800:]}")

    def _launch(self, startup_timeout: float) -> None:
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - owned by the server process
        args = [
            str(self.bin_dir / "postgres"), "-D", str(self.data_dir),
            "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.root),
            # A throwaway cluster: fsync=off spares the disk and still survives a killed server
            # (the WAL is in the kernel's page cache); synchronous_commit stays on, since a commit
            # acknowledged before its WAL is written would be lost by kill -9, as tests check.
            "-c", "fsync=off", "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args,
            cwd=self.root,
            **self._as_user(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self.wait_ready(startup_timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise ConfigError(f"postgres exited at start: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                import psycopg

                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except Exception:  # not up yet
                if time.monotonic() > deadline:
                    raise ConfigError(f"postgres did not start: {self.log_tail()}") from None
                time.sleep(0.1)

    def log_tail(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-800:]
        except OSError:
            return "(no server log)"

    def create_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.databases.add(name)

    def kill(self) -> None:
        """Kill the server as a crash would (SIGKILL to the postmaster's process group)."""
        postmaster = self._postmaster_pid()
        if self.process is not None and self.process.poll() is None:
            # The whole group (started in a session of its own): the postmaster and every
            # backend at once. Killing the postmaster alone left a busy backend running, which on
            # a loaded machine committed the transaction in flight after the "crash".
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # The processes die asynchronously; the next start refuses to run while the old
        # postmaster's pid is alive. Its pid file is left for the next start to clean.
        deadline = time.monotonic() + 10
        while postmaster is not None and _alive(postmaster) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    def restart(self, startup_timeout: float = 60.0) -> None:
        """Start the same cluster again after ``kill`` (crash recovery runs)."""
        self.kill()
        self._launch(startup_timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # the postmaster's fast shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def main() -> None:
    """``python -m destination.postgres_local [DBNAME]``: start a throwaway cluster, print the URL
    of DBNAME (default ``replica``) on it, and keep it until interrupted."""
    import sys

    server = LocalPostgres.start()
    try:
        print(server.url(sys.argv[1] if len(sys.argv) > 1 else "replica"), flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    main()
