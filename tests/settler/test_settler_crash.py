"""Exactly once (DESIGN.md rule 4): the cycle killed at every step, then run again, leaves the same
replica and the same buffer marks as a cycle never killed, and applies no block twice.

The crash is an exception raised by the cycle's fault hook at the named step (``STEPS``), the
n-th time it is reached; "applied" is the instant between the destination's commit and the
buffer's marks. Buffers are real SQLite files; the replica is an embedded ledger file.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from settler_blocks import Built, Chain, Rev, ion, put

from buffer.sqlite import SqliteBuffer
from destination.memory import MemoryDestination
from destination.port import Limits
from journal.canonical import fingerprint
from settler.cycle import STEPS, SettlePolicy, settle

WINDOW = 30.0


class Crash(Exception):
    """The settler process dies here."""


def _doc(n: int) -> str:
    return f"Doc{n:019d}"


def _workload() -> list[Built]:
    chain = Chain()
    blocks = [
        chain.block(["CREATE TABLE Person"]),
        chain.block(["INSERT INTO Person << {'n': 1} >>"], [Rev("Person", _doc(1), 0, {"n": 1})]),
        chain.block([("INSERT INTO Person ?", [{"n": 2}])], [Rev("Person", _doc(2), 0, {"n": 2})]),
        chain.block(
            [("UPDATE Person AS p SET p.m = ? WHERE p.n = 1", [7])],
            [Rev("Person", _doc(1), 1, {"n": 1, "m": 7})],
        ),
    ]
    blocks.append(
        chain.block(  # after a gap of one read-only block
            [("DELETE FROM Person AS p WHERE p.n = ?", [2])],
            [Rev("Person", _doc(2), 1, None)],
            skip=1,
        )
    )
    blocks.append(
        chain.block(  # over the 3-document limit: replayed in parts
            [("INSERT INTO Person ?", [{"n": n}]) for n in range(10, 15)],
            [Rev("Person", _doc(n), 0, {"n": n}) for n in range(10, 15)],
        )
    )
    blocks += [
        chain.block([("INSERT INTO Person ?", [{"n": n}])], [Rev("Person", _doc(n), 0, {"n": n})])
        for n in range(20, 24)
    ]
    return blocks


def _destination(kind: str, tmp: Path) -> Any:
    """A destination holding at most 3 documents per transaction, so a block is split in parts
    (the embedded ledger itself has no limit: the test sets one)."""
    if kind == "memory":
        return MemoryDestination(Limits(documents=3))
    from destination.embedded import EmbeddedDestination

    dest = EmbeddedDestination(tmp / "replica.db", id_seed="replica")
    dest.limits = Limits(documents=3)
    return dest


def _documents(dest: Any) -> dict[tuple[str, str], str]:
    """(table, source document id) -> fingerprint of the data (Ion types included)."""
    if isinstance(dest, MemoryDestination):
        return {k: fingerprint(v) for k, v in dest.documents().items()}
    source = dest.source_ids()
    return {(t, source.get(i, i)): fingerprint(data) for t, i, data in dest.documents()}


def _transactions(dest: Any) -> list[Any]:
    """What the destination committed, in order: a block applied twice shows up twice."""
    if isinstance(dest, MemoryDestination):
        return list(dest.applied)
    return [b.statements for b in dest.ledger.blocks()]


def _state(buffer: SqliteBuffer, dest: Any) -> dict[str, Any]:
    dump = buffer.dump()
    return {
        "documents": _documents(dest),
        "transactions": _transactions(dest),
        "checkpoint": [dest.checkpoint(ledger, strand) for ledger, strand in buffer.strands()],
        "blocks": {k: v["state"] for k, v in dump["blocks"].items()},
        "gaps": [(g["first"], g["last"]) for g in dump["gaps"]],
        "replayed_through": {k: v["replayed_through"] for k, v in dump["strands"].items()},
    }


def _filled(tmp: Path, blocks: list[Built]) -> Path:
    """A buffer file holding the workload (copied for each run: ingesting it is the slow part)."""
    path = tmp / "filled.db"
    buffer = SqliteBuffer(path)
    put(buffer, *blocks)
    buffer.close()
    return path


def _run(
    kind: str, tmp: Path, filled: Path, blocks: list[Built], faults: Callable[[str], None] | None
) -> tuple[SqliteBuffer, Any]:
    tmp.mkdir(exist_ok=True)
    shutil.copyfile(filled, tmp / "buffer.db")
    buffer = SqliteBuffer(tmp / "buffer.db")
    dest = _destination(kind, tmp)
    now = blocks[-1].commit
    policy = SettlePolicy(window_seconds=0, group_size=2, page_size=3)
    for _ in range(2):  # the first cycle may be killed; the second must finish the work
        try:
            settle(buffer, dest, now=now, policy=policy, faults=faults)
        except Crash:
            faults = None
    return buffer, dest


def _reference(
    kind: str, tmp: Path, filled: Path, blocks: list[Built]
) -> tuple[dict[str, Any], Counter[str]]:
    reached: Counter[str] = Counter()
    buffer, dest = _run(kind, tmp, filled, blocks, lambda step: reached.update([step]))
    state = _state(buffer, dest)
    buffer.close()
    dest.close()
    return state, reached


# The in-memory fake passes this too (run it with "memory"); the embedded replica is the one
# the issue asks about, and each run of the matrix costs seconds.
@pytest.mark.parametrize("kind", ["embedded"])
def test_a_cycle_killed_at_any_step_and_run_again_gives_the_same_replica(
    tmp_path: Path, kind: str
) -> None:
    blocks = _workload()
    filled = _filled(tmp_path, blocks)
    expected, reached = _reference(kind, tmp_path / "reference", filled, blocks)
    assert set(reached) >= set(STEPS) - {"quarantined"}
    assert expected["documents"] == {
        ("Person", _doc(1)): fingerprint(ion({"n": 1, "m": 7})),
        **{
            ("Person", _doc(n)): fingerprint(ion({"n": n}))
            for n in [*range(10, 15), *range(20, 24)]
        },
    }
    cases = [(step, n) for step in STEPS for n in range(1, reached[step] + 1)]
    assert len(cases) > 30
    for step, n in cases:
        tmp = tmp_path / f"{step}-{n}"
        seen = 0

        def crash(at: str, step: str = step, n: int = n) -> None:
            nonlocal seen
            if at == step:
                seen += 1
                if seen == n:
                    raise Crash(f"killed at {step} #{n}")

        buffer, dest = _run(kind, tmp, filled, blocks, crash)
        assert seen >= n, (step, n)
        assert _state(buffer, dest) == expected, f"killed at {step} #{n}"
        buffer.close()
        dest.close()
