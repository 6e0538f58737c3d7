"""The names the parser checks function calls against: QLDB's functions, the non-deterministic
ones (``ledger.classify`` does not replay them), the date parts of DATE_ADD, DATE_DIFF and
EXTRACT, and CAST's type names. Standard library only (the ingest Lambda parses too).
"""

from __future__ import annotations

# Functions the engine evaluates (lower-case): QLDB's function list ("PartiQL functions in
# Amazon QLDB"); ``utcnow`` and ``txid`` are the non-deterministic ones. CAST, EXTRACT and the
# TRIM forms have rules of their own; DATE_ADD/DATE_DIFF take a date part as their first word.
FUNCTIONS = frozenset(
    {
        "utcnow", "txid", "upper", "lower", "char_length", "character_length", "size", "exists",
        "coalesce", "nullif", "substring", "trim", "to_string", "to_timestamp", "date_add",
        "date_diff", "extract", "cast",
    }
)  # fmt: skip
NONDETERMINISTIC = frozenset({"utcnow", "txid"})
DATE_PARTS = frozenset({"year", "month", "day", "hour", "minute", "second"})
EXTRACT_PARTS = DATE_PARTS | {"timezone_hour", "timezone_minute"}
# CAST's target types (the "Data types" page's Ion types CAST converts to, with the CAST page's
# names ``boolean`` and ``integer``); blob, clob and sexp have no CAST rule there.
CAST_TYPES = {
    "null": "null", "missing": "missing", "bool": "bool", "boolean": "bool", "int": "int",
    "integer": "int", "float": "float", "decimal": "decimal", "timestamp": "timestamp",
    "string": "string", "symbol": "symbol", "struct": "struct", "list": "list", "bag": "bag",
}  # fmt: skip
