"""An in-memory fake ``Destination`` for unit tests, shipped in the package (like procrastinate's
``testing.py``): checkpoint compare-and-set, the source-to-destination id map and all-or-nothing
application behave as the port promises, without a ledger underneath.

It does not execute PartiQL: a ``StatementOp`` is recorded in ``executed``, and a block replayed
as statements takes effect through the revisions it carries (``BlockReplay.revisions``), which is
the state a faithful destination reaches by running them. Tests say where they use it.
``applied`` and ``transactions`` record what was committed, block by block and transaction by
transaction. ``refuse`` makes the named blocks fail as a destination refusing them would
(``ReplayError``); ``lose_answers`` makes the next that many ``apply`` calls commit and then
raise ``TransientError``, as a driver whose commit answer was lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from destination import port
from destination.port import ApplyReport, BlockReplay, Checkpoint, Limits, RevisionOp, StatementOp
from journal.errors import ReplayError
from runtime.errors import CheckpointMismatch, TransientError


@dataclass(slots=True)
class _State:
    checkpoints: dict[tuple[str, str], Checkpoint] = field(default_factory=dict)
    documents: dict[tuple[str, str], Any] = field(default_factory=dict)
    id_map: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    next_id: int = 0

    def copy(self) -> _State:
        return _State(
            checkpoints=dict(self.checkpoints),
            documents=dict(self.documents),
            id_map=dict(self.id_map),
            next_id=self.next_id,
        )


class MemoryDestination:
    """In-memory fake of the ``Destination`` port (see the module docstring)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._state = _State()
        self.executed: list[tuple[str, int | None, str]] = []
        self.applied: list[tuple[str, int | None]] = []
        self.transactions: list[list[tuple[str, int | None]]] = []
        self.refuse: dict[str, str] = {}
        self.lose_answers = 0
        self.apply_calls = 0

    # --- the port --------------------------------------------------------------------------------

    def checkpoint(self, ledger: str, strand_id: str) -> Checkpoint | None:
        return self._state.checkpoints.get((ledger, strand_id))

    def apply(self, blocks: Sequence[BlockReplay], expected: Checkpoint | None) -> ApplyReport:
        self.apply_calls += 1
        key = port.strand_of(blocks)
        if self._state.checkpoints.get(key) != expected:
            raise CheckpointMismatch(
                f"checkpoint of {key[0]}/{key[1]} is {self._state.checkpoints.get(key)}, "
                f"not the expected {expected}"
            )
        state = self._state.copy()
        report = ApplyReport()
        executed: list[tuple[str, int | None, str]] = []
        for block in blocks:
            if block.block_id in self.refuse:
                raise ReplayError(block.block_id, self.refuse[block.block_id])
            for op in block.ops:
                if isinstance(op, StatementOp):
                    executed.append((block.block_id, block.part, op.text))
                    report.statements += 1
                else:
                    self._revision(state, block.ledger, op)
                    report.revisions += 1
                    report.documents_written += 1
            if block.mode == "statements":
                for rev in block.revisions:
                    self._revision(state, block.ledger, rev)
                    report.documents_written += 1
        state.checkpoints[key] = blocks[-1].checkpoint()
        self._state = state
        self.executed += executed
        self.applied += [(b.block_id, b.part) for b in blocks]
        self.transactions.append([(b.block_id, b.part) for b in blocks])
        if self.lose_answers > 0:
            self.lose_answers -= 1
            raise TransientError("the destination's answer to a commit was lost (simulated)")
        return report

    def close(self) -> None:
        pass

    # --- what tests look at ----------------------------------------------------------------------

    def documents(self) -> dict[tuple[str, str], Any]:
        """Current documents by (table, source document id) where the source id is known."""
        by_dest = {dest: src for (_, src), dest in self._state.id_map.items()}
        return {
            (table, by_dest.get((table, dest_id), dest_id)): data
            for (table, dest_id), data in self._state.documents.items()
        }

    def _revision(self, state: _State, ledger: str, op: RevisionOp) -> None:
        source = (ledger, op.document_id)
        dest = state.id_map.get(source)
        if op.data is None:
            if dest is not None:
                state.documents.pop(dest, None)
            return
        if dest is None:
            state.next_id += 1
            dest = (op.table_name, f"dest{state.next_id:018d}")
            state.id_map[source] = dest
        state.documents[dest] = op.data
