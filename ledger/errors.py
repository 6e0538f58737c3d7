"""Errors of the embedded ledger, extending the project's hierarchy (``journal.errors``).

Each carries the statement (or transaction) it concerns; its docstring says what it means.
"""

from __future__ import annotations

from journal.errors import SettleError


def _short(text: str, limit: int = 200) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


class LedgerError(SettleError):
    """Base of the embedded ledger's errors."""


class StatementError(LedgerError):
    """A statement cannot be run: it does not parse, or uses a part of PartiQL this ledger does not
    support, or fails on the data (a missing table, a type error). Nothing of the transaction's
    statement was applied."""

    def __init__(self, statement: str, reason: str) -> None:
        self.statement = statement
        self.reason = reason
        super().__init__(f"statement {_short(statement)!r}: {reason}")


class ParseError(StatementError):
    """A statement does not parse; ``reason`` points at the offending token (line, column)."""


class OccConflict(LedgerError):
    """Optimistic concurrency control: a document or table this transaction read was changed by a
    transaction that committed after this one began. Nothing was committed; run it again."""

    def __init__(self, transaction_id: str, reason: str) -> None:
        self.transaction_id = transaction_id
        self.reason = reason
        super().__init__(f"transaction {transaction_id}: OCC conflict: {reason}")


class LimitExceeded(LedgerError):
    """A QLDB quota was exceeded (documents or bytes per transaction, bytes per document,
    characters per statement). Nothing of the statement was applied."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


class TransactionClosed(LedgerError):
    """The transaction was already committed or aborted."""
