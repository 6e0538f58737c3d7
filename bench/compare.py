"""``python -m bench.compare OLD_TREE [NEW_TREE]``: the replay and ingest benchmarks' children on
two work trees of this repository, alternating, with paired ratios (new / old).

This is how "no slower than before" is shown for a change that spans many commits: check out the
commit before it as a second work tree (``git worktree add --detach /tmp/old COMMIT``, with the
same ``.venv`` and ``.venv-ingest`` linked into it), then run this from the new tree. Each tree
builds its own inputs with its own code (the buffer schema may differ between them); the
measured children then alternate old/new, new/old, ... so that machine load falls on both
alike. Printed per figure: the median of each side and the median of the paired ratios, with
every ratio (a ratio above 1 means the new tree is faster). CPU seconds are the steadier figure
on a shared machine.

The children are ``bench.replay``'s ``build``/``replay`` (a template buffer of 1,000 blocks per
replay mode settled whole into a new embedded ledger) and ``bench.ingest``'s ``ingest`` (the
ingest input of ``make bench`` through decode and ``ingest_items`` into a new SQLite buffer, in
``.venv-ingest``), so the two trees must both have those children (any commit since the
benchmarks of issue 9).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import BenchError, run_child
from bench.replay import _now_after

Json = dict[str, Any]
MODES = ("statements", "revisions", "simulated")


def _child(tree: Path, module: str, args: Json, *, venv: str = ".venv") -> Json:
    try:
        return run_child(module, args, python=tree / venv / "bin" / "python", tree=tree)
    except BenchError as exc:
        raise SystemExit(str(exc)) from exc


def _templates(tree: Path, work: Path, transactions: int) -> dict[str, Json]:
    return {
        mode: _child(
            tree,
            "bench.replay",
            {
                "mode": "build",
                "replay_mode": mode,
                "path": str(work / f"replay-{mode}.db"),
                "transactions": transactions,
            },
        )
        for mode in MODES
    }


def _replay(tree: Path, template: Json) -> Json:
    blocks = int(template["blocks"])
    return _child(
        tree,
        "bench.replay",
        {
            "mode": "replay",
            "template": template["path"],
            "group": 0,
            "round_trip_ms": 0.0,
            "now": _now_after(template["commits"], blocks),
            "blocks": blocks,
        },
    )


def _ingest_input(tree: Path, work: Path, transactions: int) -> Path:
    code = (
        "import sys; from pathlib import Path; "
        "from qldb_settle.simulate import SimulationConfig, simulate; "
        "simulate(Path(sys.argv[1]), SimulationConfig(transactions=int(sys.argv[2]), seed=5))"
    )
    env = dict(os.environ, PYTHONPATH=str(tree))
    subprocess.run(
        [str(tree / ".venv" / "bin" / "python"), "-c", code, str(work), str(transactions)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
    )
    return work / "events"


def _line(name: str, old: list[float], new: list[float]) -> str:
    ratios = [n / o for o, n in zip(old, new, strict=True)]
    return (
        f"{name:44} old {statistics.median(old):9,.0f}  new {statistics.median(new):9,.0f}  "
        f"new/old {statistics.median(ratios):.2f}  ({', '.join(f'{r:.2f}' for r in ratios)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("old", type=Path, help="the work tree of the earlier commit")
    parser.add_argument("new", type=Path, nargs="?", default=Path.cwd(), help="default: here")
    parser.add_argument("--reps", type=int, default=6, help="alternating pairs (default 6)")
    parser.add_argument("--transactions", type=int, default=998, help="replay template size")
    parser.add_argument("--ingest-transactions", type=int, default=500)
    parser.add_argument("--skip-ingest", action="store_true")
    args = parser.parse_args(argv)
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    results: dict[tuple[str, str], list[Json]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        inputs: dict[str, Json] = {}
        for side, tree in trees.items():
            work = Path(tmp) / side
            work.mkdir()
            print(f"building {side} inputs in {tree}", file=sys.stderr, flush=True)
            inputs[side] = {"templates": _templates(tree, work, args.transactions)}
            if not args.skip_ingest:
                inputs[side]["events"] = _ingest_input(
                    tree, work / "ingest", args.ingest_transactions
                )
        for rep in range(args.reps):
            order = ("old", "new") if rep % 2 == 0 else ("new", "old")
            for side in order:
                tree = trees[side]
                for mode in MODES:
                    got = _replay(tree, inputs[side]["templates"][mode])
                    results.setdefault((side, mode), []).append(got)
                if not args.skip_ingest:
                    got = _child(
                        tree,
                        "bench.ingest",
                        {"mode": "ingest", "events": str(inputs[side]["events"])},
                        venv=".venv-ingest",
                    )
                    results.setdefault((side, "ingest"), []).append(got)
            print(f"pair {rep + 1} of {args.reps} done", file=sys.stderr, flush=True)
    print(f"old: {trees['old']}\nnew: {trees['new']}")
    for mode in MODES:
        for key, what in (
            ("apply_seconds", "apply"),
            ("cycle_seconds", "whole cycle"),
            ("cycle_cpu_seconds", "whole cycle, CPU"),
        ):
            old = [r["blocks"] / r[key] for r in results["old", mode]]
            new = [r["blocks"] / r[key] for r in results["new", mode]]
            print(_line(f"{mode} replay blocks/s, {what}", old, new))
    if not args.skip_ingest:
        for key, what in (("seconds", "wall"), ("cpu_seconds", "CPU")):
            old = [r["records"] / r[key] for r in results["old", "ingest"]]
            new = [r["records"] / r[key] for r in results["new", "ingest"]]
            print(_line(f"ingest records/s (.venv-ingest), {what}", old, new))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
