"""Where the time goes now, per path: cProfile of the ingest path and of one settle cycle per
replay template, the self time of every function grouped by the module it belongs to, as shares
of the path's total.

- ``ingest``: every event of the ingest input through ``bench.ingest.ingest_events`` (decode and
  ``ingest_items`` into a new ``SqliteBuffer``, one call per event), in the ingest Lambda's
  environment (``.venv-ingest``) when it exists;
- ``statements``, ``revisions``, ``simulated``: one ``settle`` call over every block of the
  replay template (``bench.replay.build``) into a new embedded ledger, opened through the
  composition (``compose.roots``).

Grouping (``group_times``): a Python function's self time goes to its module, the project's by
package and module (``ledger.engine``, ``journal.ion_binary``: two levels), a third-party
package by its distribution's top package (``amazon.ion``, ``lark``, ``ionhash``), the standard
library as ``stdlib``. A built-in (C) function's self time goes to the group of the Python
function that called it (cProfile records the time per caller), except SQLite's, which is a group
of its own (``sqlite3 (C)``): so ``buffer.sqlite`` is the Python around the buffer's queries and
``sqlite3 (C)`` the queries themselves. Shares add up to 100% per path. cProfile's overhead
inflates many small Python calls against a few long C calls: read the shares, not the seconds.
"""

from __future__ import annotations

import shutil
import sysconfig
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, Json, run_child

MODULE = "bench.profiles"
SQLITE_GROUP = "sqlite3 (C)"
OTHER = "other"
TOP = 10
PATHS = ("ingest", "statements", "revisions", "simulated")

# (filename, line, function) -> (primitive calls, calls, self time, cumulative time, callers)
Key = tuple[str, int, str]
StatsTable = Mapping[Key, tuple[Any, ...]]

_STDLIB = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])


def module_group(filename: str, root: Path = REPO_ROOT) -> str:
    """The group of a Python source file (see the module docstring)."""
    in_stdlib = filename.startswith(_STDLIB) and "site-packages" not in filename
    if filename.startswith("<frozen") or in_stdlib:
        return "stdlib"
    if "site-packages/" in filename:
        parts = filename.split("site-packages/", 1)[1].split("/")
        top = parts[0].removesuffix(".py")
        if top in ("amazon",) and len(parts) > 1:
            return f"{top}.{parts[1].removesuffix('.py')}"
        return top
    try:
        rel = Path(filename).resolve().relative_to(root.resolve())
    except ValueError:
        return OTHER
    parts = list(rel.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts[:2]) if parts else OTHER


def group_times(stats: StatsTable, root: Path = REPO_ROOT) -> dict[str, float]:
    """Self time per group (see the module docstring); built-ins go to their callers' groups."""
    out: dict[str, float] = {}

    def add(group: str, seconds: float) -> None:
        out[group] = out.get(group, 0.0) + seconds

    for (filename, _line, name), entry in stats.items():
        tt, callers = float(entry[2]), entry[4] if len(entry) > 4 else {}
        if filename != "~":
            add(module_group(filename, root), tt)
        elif "sqlite3" in name:
            add(SQLITE_GROUP, tt)
        elif callers:
            for (c_file, _c_line, _c_name), edge in callers.items():
                add(OTHER if c_file == "~" else module_group(c_file, root), float(edge[2]))
        else:
            add(OTHER, tt)
    return out


def shares(times: Mapping[str, float]) -> dict[str, float]:
    total = sum(times.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in times.items()}


def top_groups(per_path: Mapping[str, Mapping[str, float]], n: int = TOP) -> list[str]:
    """The groups to show: each path's ``n`` largest, ordered by their largest share anywhere."""
    chosen: set[str] = set()
    for s in per_path.values():
        chosen.update(sorted(s, key=lambda g: -s[g])[:n])
    return sorted(chosen, key=lambda g: (-max(s.get(g, 0.0) for s in per_path.values()), g))


def _profiled(call: Any) -> tuple[Any, Json]:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        result = call()
    finally:
        profiler.disable()
    stats: StatsTable = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    times = group_times(stats)
    hottest = sorted(stats.items(), key=lambda kv: -float(kv[1][2]))[:10]
    return result, {
        "profiled_seconds": sum(times.values()),
        "seconds": times,
        "shares": shares(times),
        "hottest_functions": [
            {"function": f"{module_group(k[0]) if k[0] != '~' else 'C'}: {k[2]}", "self": v[2]}
            for k, v in hottest
        ],
    }


def child_ingest(args: Json) -> Json:
    from bench.common import ion_version
    from bench.ingest import _events, ingest_events
    from buffer.sqlite import SqliteBuffer
    from ledger.classify import classify

    events = _events(Path(args["events"]))
    classify("SELECT * FROM Person")  # warm-up, as the ingest benchmark's
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        buffer = SqliteBuffer(Path(tmp) / "buffer.db")
        try:
            report, out = _profiled(lambda: ingest_events(buffer, events))
        finally:
            buffer.close()
    return {**out, "records": report.records, "ion": ion_version()}


def child_settle(args: Json) -> Json:
    from bench.replay import settle_then_close, warm_up
    from compose.roots import open_buffer, open_destination
    from compose.settings import Settings

    warm_up()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        copy = Path(tmp) / "buffer.db"
        shutil.copyfile(args["template"], copy)
        settings = Settings(buffer=f"sqlite:{copy}", destination=f"embedded:{tmp}/replica.db")
        report, out = settle_then_close(
            open_buffer(settings), open_destination(settings), args["now"], around=_profiled
        )
    return {**out, "blocks": report.blocks, "statements": report.statements}


def _work(args: Json) -> Json:
    if args["mode"] == "ingest":
        return child_ingest(args)
    return child_settle(args)


def measure(events: Path, templates: Mapping[str, Json], *, ingest_python: Path | str) -> Json:
    """One profiled run per path (the ingest one in ``ingest_python``)."""
    from bench.replay import _now_after

    paths: dict[str, Json] = {
        "ingest": run_child(MODULE, {"mode": "ingest", "events": str(events)}, python=ingest_python)
    }
    for name in PATHS[1:]:
        template = templates.get(name)
        if template is None:
            continue
        blocks = int(template["blocks"])
        paths[name] = run_child(
            MODULE,
            {
                "mode": "settle",
                "template": template["path"],
                "now": _now_after(template["commits"], blocks),
            },
        )
    return {
        "paths": paths,
        "groups": top_groups({p: r["shares"] for p, r in paths.items()}),
        "ingest_ion": paths["ingest"]["ion"],
    }


def table_rows(profile: Json, paths: Iterable[str] = PATHS) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the profile table: one row per group, a share per path, the rest
    of each path's time as ``other`` (every column adds up to 100%)."""
    present = [p for p in paths if p in profile["paths"]]
    groups = [g for g in profile["groups"] if g != OTHER]
    rows = []
    for g in groups:
        rows.append(
            [f"`{g}`"] + [f"{profile['paths'][p]['shares'].get(g, 0.0):.0%}" for p in present]
        )
    rest = [1.0 - sum(profile["paths"][p]["shares"].get(g, 0.0) for g in groups) for p in present]
    rows.append(["everything else"] + [f"{max(0.0, r):.0%}" for r in rest])
    rows.append(
        ["profiled seconds"] + [f"{profile['paths'][p]['profiled_seconds']:.2f}" for p in present]
    )
    header = ["self time in (module)"] + [LABELS.get(p, p) for p in present]
    return header, rows


LABELS = {
    "ingest": "ingest",
    "statements": "settle cycle, statements",
    "revisions": "settle cycle, revisions",
    "simulated": "settle cycle, simulated",
}


if __name__ == "__main__":
    from bench.common import child_main

    child_main(_work)
