"""One export data object, block by block, in any of the three output formats (detected).

QLDB writes each data object in the export's output format: ``ION_TEXT`` (the default),
``ION_BINARY`` or ``JSON`` (JSON Lines: one block per line, down-converted from Ion). The format
is detected from the bytes (the Ion binary version marker; a first line that is a JSON object;
otherwise Ion text), so a mislabelled object is still read right. A damaged object yields the
blocks before the damage, then one ``ObjectDamage`` saying where and why: the good blocks before it
still go through.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from journal.ion_binary import BVM, IonBinaryError, check_value, decode_all

Format = Literal["ION_TEXT", "ION_BINARY", "JSON"]
FORMATS: tuple[Format, ...] = ("ION_TEXT", "ION_BINARY", "JSON")


@dataclass(frozen=True, slots=True)
class ObjectBlock:
    """The ``index``-th block of an object: its value as read (Ion values, or JSON ones for
    ``JSON``) and the bytes it was read from (one line of JSON Lines; the object otherwise)."""

    index: int
    value: Any
    raw: bytes


@dataclass(frozen=True, slots=True)
class ObjectDamage:
    """The object cannot be read past its ``index``-th block: ``reason`` says why."""

    index: int
    reason: str
    raw: bytes


def detect_format(data: bytes) -> Format:
    if data[:4] == BVM:
        return "ION_BINARY"
    first = data.lstrip()[:1]
    if first == b"{":
        line = data.lstrip().split(b"\n", 1)[0]
        try:
            return "JSON" if isinstance(json.loads(line), dict) else "ION_TEXT"
        except ValueError:
            return "ION_TEXT"
    return "ION_TEXT"


def read_object(data: bytes) -> tuple[Format, Iterator[ObjectBlock | ObjectDamage]]:
    """The object's format and its blocks; a damage, if any, comes last."""
    fmt = detect_format(data)
    if fmt == "ION_BINARY":
        return fmt, _binary(data)
    if fmt == "JSON":
        return fmt, _json_lines(data)
    return fmt, _ion_text(data)


def _binary(data: bytes) -> Iterator[ObjectBlock | ObjectDamage]:
    # Walk the top-level values first (amazon.ion 0.15's C extension can hang on malformed binary,
    # journal.ion_binary.structure); a damaged object is cut at the last whole value before the
    # damage.
    pos, end, cut, damage = 4, len(data), 4, None
    while pos < end:
        try:
            if data[pos : pos + 4] == BVM:
                pos += 4
            else:
                pos = check_value(data, pos, end)
            cut = pos
        except IonBinaryError as exc:
            damage = f"invalid Ion binary at byte {exc.offset}: {exc.reason}"
            break
    n = 0
    try:
        values = decode_all(data[:cut]) if cut > 4 else []
    except Exception as exc:  # amazon.ion raises many types on corrupt input (ingest.decode)
        values, damage = [], f"invalid Ion binary: {type(exc).__name__}: {str(exc)[:200]}"
    for value in values:
        yield ObjectBlock(n, value, data)
        n += 1
    if damage is not None:
        yield ObjectDamage(n, damage, data[cut:])


def _ion_text(data: bytes) -> Iterator[ObjectBlock | ObjectDamage]:
    from amazon.ion import simpleion

    n = 0
    try:
        text = data.decode("utf-8-sig")
        values = simpleion.load(io.StringIO(text), single_value=False, parse_eagerly=False)
        for value in values:
            yield ObjectBlock(n, value, data)
            n += 1
    except Exception as exc:  # a truncated or corrupt object: the blocks before it stand
        yield ObjectDamage(n, f"invalid Ion text: {type(exc).__name__}: {str(exc)[:200]}", b"")


def _json_lines(data: bytes) -> Iterator[ObjectBlock | ObjectDamage]:
    n = 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            # Numbers keep their digits: a down-converted Ion decimal was written exactly.
            value = json.loads(line, parse_float=Decimal)
        except ValueError as exc:
            yield ObjectDamage(n, f"invalid JSON line: {exc}", line)
            return
        if not isinstance(value, dict):
            yield ObjectDamage(n, "a JSON line that is not an object", line)
            return
        yield ObjectBlock(n, value, line)
        n += 1
