"""What every benchmark shares: timing, medians, peak RSS, child processes, the printed table.

Standard library and ``journal.errors`` only: the ingest benchmark's children run in the small
ingest environment (amazon.ion 0.15, no ionhash, no pyqldb).

A child is ``python -m bench.<module> '<json arguments>'``; it prints one JSON object as the last
line of its standard output (``child_main``), and ``run_child`` returns it. Each child is a fresh
interpreter, so its peak RSS (``resource.getrusage``) is its own.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from journal.errors import SettleError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
MAIN_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
INGEST_PYTHON = REPO_ROOT / ".venv-ingest" / "bin" / "python"

Json = dict[str, Any]


class BenchError(SettleError):
    """A benchmark could not measure what it should (a child failed, or the measured code did not
    do the work the figure is about); the message says which and why."""


def median(values: Sequence[float]) -> float:
    """The median (the mean of the two middle values for an even count)."""
    if not values:
        raise ValueError("median of nothing")
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """``{"p50", "p90", "p99", "max", "n"}`` by nearest rank (as DESIGN.md's distributions)."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None, "n": 0}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return float(ordered[max(0, math.ceil(p * len(ordered)) - 1)])

    return {
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": float(ordered[-1]),
        "n": len(ordered),
    }


def _proc_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> None:
    """Start measuring the peak RSS afresh from now (Linux: ``5`` into ``/proc/self/clear_refs``
    lowers the high-water mark to the current RSS); a no-op where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        log.debug("cannot reset the peak RSS", exc_info=True)


def rss_kb() -> int:
    """This process's resident set size now, in KiB."""
    now = _proc_status_kb("VmRSS")
    return now if now is not None else peak_rss_kb()


def peak_rss_kb() -> int:
    """This process's peak resident set size (since the last ``reset_peak_rss``), in KiB.

    Linux's ``VmHWM`` of this process's own memory: ``getrusage``'s ``ru_maxrss`` is not used
    where ``/proc`` has it, because Linux carries ``ru_maxrss`` over from the parent across
    ``fork``/``vfork`` and ``exec``, so a child started by a larger parent reports the parent's
    peak."""
    hwm = _proc_status_kb("VmHWM")
    if hwm is not None:
        return hwm
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@dataclass(slots=True)
class Timing:
    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def timed() -> Iterator[Timing]:
    """Wall-clock and CPU seconds of the ``with`` body."""
    t = Timing()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield t
    finally:
        t.wall = time.perf_counter() - wall
        t.cpu = time.process_time() - cpu


def child_main(work: Callable[[Json], Json]) -> None:
    """The body of a child's ``__main__``: one JSON argument in, one JSON line out."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: python -m {sys.argv[0]} '<json arguments>'")
    result = work(json.loads(sys.argv[1]))
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()


def run_child(
    module: str,
    args: Mapping[str, Any],
    *,
    python: Path | str | None = None,
    timeout: float = 900,
    tree: Path | None = None,
) -> Json:
    """Run ``python -m module '<args>'`` from the repository root (or from ``tree``, another
    work tree, whose code it then imports: ``bench.compare``); its last stdout line, parsed.
    Raises ``BenchError`` with the end of its stderr when it fails."""
    exe = str(python or sys.executable)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    try:
        done = subprocess.run(
            [exe, "-m", module, json.dumps(dict(args))],
            cwd=tree or REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{module} did not finish within {timeout:.0f} s") from exc
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        where = f" in {tree}" if tree is not None else ""
        raise BenchError(
            f"{module} ({exe}){where} failed with exit code {done.returncode}:\n{tail}"
        )
    result: Json = json.loads(lines[-1])
    return result


def ion_version() -> str:
    """The amazon.ion this process runs, and whether with its C extension (the ingest Lambda's
    0.15 has one, the main environment's 0.9.3 is pure Python)."""
    from importlib.metadata import version

    from amazon.ion import simpleion

    c_ext = bool(getattr(simpleion, "c_ext", False))
    return f"amazon.ion {version('amazon.ion')}" + (" (C extension)" if c_ext else " (pure Python)")


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def rounded(value: Any, digits: int = 3) -> Any:
    """Floats rounded (recursively) so results.json stays readable."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


def fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A plain text table (monospace columns)."""
    cells = [list(header), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
