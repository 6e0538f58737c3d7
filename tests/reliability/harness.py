"""The campaign's plumbing: ``qldb-settle`` as real subprocesses (each with its output in files, so
no pipe ever blocks a process), ``kill -9`` at a random instant, and a running estimate of how
long each command takes so that the instants fall inside the work rather than after it."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def cli_command() -> list[str]:
    """The ``qldb-settle`` console script of the running virtualenv (as ``make chaos`` has it),
    else the repository's ``.venv``, else the module."""
    for exe in (
        Path(sys.executable).with_name("qldb-settle"),
        REPO_ROOT / ".venv" / "bin" / "qldb-settle",
    ):
        if exe.is_file():
            return [str(exe)]
    return [sys.executable, "-m", "qldb_settle.cli"]


def base_env(**settings: str) -> dict[str, str]:
    """The environment of every process: this one's, without any ``QLDB_SETTLE_*`` of the caller
    (a campaign must not settle someone's real buffer), plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QLDB_SETTLE_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(settings)
    return env


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    """A process that ended: its exit code (negative: the signal that ended it), output, and, when
    the campaign killed it, how many seconds after its start the ``kill -9`` landed."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    seconds: float
    killed_at: float | None = None

    @property
    def killed(self) -> bool:
        return self.killed_at is not None

    def json(self) -> Any:
        """The one JSON object a ``--json`` command printed (the last line that is one)."""
        for line in reversed(self.stdout.splitlines()):
            text = line.strip()
            if text.startswith("{"):
                return json.loads(text)
        raise ValueError(f"{' '.join(self.args[:2])}: no JSON on stdout: {self.stderr[-500:]}")

    def describe(self) -> str:
        tail = self.stderr.strip().splitlines()[-1:] or [""]
        return f"{' '.join(self.args)} -> exit {self.code}: {tail[0][:300]}"


class Running:
    """A started process."""

    def __init__(
        self, args: Sequence[str], proc: subprocess.Popen[bytes], out: Path, err: Path
    ) -> None:
        self.args = tuple(args)
        self.proc = proc
        self.pid = proc.pid
        self.started = time.monotonic()
        self._out = out
        self._err = err
        self.killed_at: float | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_until(self, seconds_after_start: float) -> bool:
        """Sleep until that instant or until the process ends; True if it is still running."""
        left = seconds_after_start - self.elapsed()
        if left > 0:
            try:
                self.proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                return True
        return self.alive()

    def kill9(self) -> bool:
        """``kill -9`` the process if it is still running; True when the signal ended it."""
        if not self.alive():
            return False
        at = self.elapsed()
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        self.proc.wait()
        if self.proc.returncode == -signal.SIGKILL:
            self.killed_at = at
            return True
        return False

    def wait(self, timeout: float = 600.0) -> Finished:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"{' '.join(self.args)} ran longer than {timeout} s") from None
        return Finished(
            args=self.args,
            code=self.proc.returncode,
            stdout=self._out.read_text(encoding="utf-8", errors="replace"),
            stderr=self._err.read_text(encoding="utf-8", errors="replace"),
            seconds=self.elapsed(),
            killed_at=self.killed_at,
        )


class Cli:
    """Runs ``qldb-settle`` (or another command) with a fixed environment; every process's output
    goes to ``logs/NNNNN-<command>.out|.err`` under ``workdir`` (kept for a post-mortem)."""

    def __init__(self, *, env: Mapping[str, str], workdir: Path) -> None:
        self.env = dict(env)
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._count = 0
        self._lock = threading.Lock()
        self.command = cli_command()

    def start(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        program: Sequence[str] | None = None,
    ) -> Running:
        with self._lock:
            self._count += 1
            n = self._count
        name = (args[0] if args else "run").replace("/", "_")
        out = self.logs / f"{n:05d}-{name}.out"
        err = self.logs / f"{n:05d}-{name}.err"
        argv = [*(program or self.command), *args]
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=o,
                stderr=e,
                env={**self.env, **(env or {})},
                cwd=REPO_ROOT,
            )
        return Running(args, proc, out, err)

    def run(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        program: Sequence[str] | None = None,
        timeout: float = 600.0,
    ) -> Finished:
        return self.start(args, env=env, program=program).wait(timeout)


@dataclass(slots=True)
class Durations:
    """Running medians of how long un-faulted runs of each command took, so that a kill instant
    drawn in ``[0.2, 1.1] × median`` falls while the process works (the first fifth is mostly
    Python starting) or just after it ends (then not counted as a kill)."""

    default: float = 1.5
    seen: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, seconds: float) -> None:
        self.seen.setdefault(key, []).append(seconds)

    def estimate(self, key: str) -> float:
        values = self.seen.get(key)
        return statistics.median(values[-15:]) if values else self.default

    def instant(self, key: str, rng: Random) -> float:
        return rng.uniform(0.2, 1.1) * self.estimate(key)
