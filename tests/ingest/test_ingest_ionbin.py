"""The Ion binary structure check and stream splitter: everything amazon.ion writes passes, and
malformed binary (including the input that makes amazon.ion 0.15's C extension loop forever) is
refused before simpleion sees it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from amazon.ion import simpleion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import DYNAMODB_EVENT, ES_EVENT, kinesis_data
from ingest_strategies import ion_values

from buffer.port import Rejection
from ingest import kpl
from ingest.decode import decode_user_record
from journal.ion_binary import BVM, IonBinaryError, check, segments

pytestmark = pytest.mark.ingest_env

# Found by fuzzing a real record, then minimised: a local symbol table whose declared lengths run
# past the end. amazon.ion 0.15's C extension never returns from simpleion.loads on it (0.9.3
# raises). If the check in front of simpleion regressed, this test would hang in the ingest
# environment rather than fail.
HANGS_ION_0_15 = bytes.fromhex("e00100eaee01e88183de01e387be8ddeca")


def real_records() -> list[bytes]:
    return [u.data for e in (DYNAMODB_EVENT, ES_EVENT) for u in kpl.deaggregate(kinesis_data(e))]


def test_real_records_pass_the_check() -> None:
    for record in real_records():
        check(record)
    assert [(s.start, s.end, s.error) for s in segments(b"".join(real_records()))] == [
        (sum(len(r) for r in real_records()[:i]), sum(len(r) for r in real_records()[: i + 1]),
         None) for i in range(4)
    ]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=10), ion_values, max_size=6))
def test_whatever_amazon_ion_writes_passes_the_check(value: dict[str, Any]) -> None:
    data = simpleion.dumps(value, binary=True)
    check(data)
    assert [(s.start, s.end, s.error) for s in segments(data)] == [(0, len(data), None)]


def test_the_input_that_hangs_the_c_extension_is_refused_first() -> None:
    with pytest.raises(IonBinaryError, match="runs past the end"):
        check(HANGS_ION_0_15)
    item = decode_user_record(HANGS_ION_0_15, origin="s/1")
    assert isinstance(item, Rejection) and item.kind == "ion"
    assert item.reason.startswith("invalid Ion binary: offset ")


@pytest.mark.parametrize(
    ("hexdata", "message"),
    [
        ("e00100ea" + "f0", "reserved type descriptor"),
        ("e00100ea" + "13", "invalid bool"),
        ("e00100ea" + "30", "negative zero int"),
        ("e00100ea" + "43000000", "float of 3 bytes"),
        ("e00100ea" + "60", "empty timestamp"),
        ("e00100ea" + "79" + "00" * 9, "symbol id of 9 bytes"),
        ("e00100ea" + "82ff fe", "string is not UTF-8"),
        ("e00100ea" + "b2 8a 61", "runs past the end of its container"),
        ("e00100ea" + "d1 81 8a", "struct field name without a value"),
        ("e00100ea" + "e4 81 84 e3 81 84 20", "annotation wrapper around an annotation"),
        ("e00100ea" + "e4 81 84 20 20", "holds more than one value"),
        ("e00100ea" + "e0 01 00 eb", "invalid version marker"),
        ("e00100ea" + "2e", "length runs past the end"),
        ("e00100eb", "no Ion binary version marker"),
    ],
)
def test_malformed_binary_is_refused_with_its_offset(hexdata: str, message: str) -> None:
    with pytest.raises(IonBinaryError, match=message):
        check(bytes.fromhex(hexdata.replace(" ", "")))


def test_deep_nesting_is_checked_without_recursion() -> None:
    depth = 5000
    inner = b"\x20"
    for _ in range(depth):
        inner = (bytes([0xB0 | len(inner)]) if len(inner) < 14 else
                 bytes([0xBE]) + _varuint(len(inner))) + inner  # fmt: skip
    data = BVM + inner
    with pytest.raises(IonBinaryError, match="nested deeper than"):
        check(data)


def _varuint(n: int) -> bytes:
    out = [0x80 | (n & 0x7F)]
    n >>= 7
    while n:
        out.append(n & 0x7F)
        n >>= 7
    return bytes(reversed(out))


def test_segments_resume_after_a_broken_stretch() -> None:
    a, b, c, _ = real_records()
    data = a + b[:100] + c
    segs = segments(data)
    assert [(s.start, s.end) for s in segs] == [
        (0, len(a)),
        (len(a), len(a) + 100),
        (len(a) + 100, len(data)),
    ]
    assert segs[0].error is None and segs[2].error is None
    assert segs[1].error is not None and segs[1].error.startswith("offset ")
    garbage = segments(b"junk" + a)
    assert garbage[0].error == "offset 0: no Ion binary version marker"
    assert (garbage[1].start, garbage[1].error) == (4, None)


def test_decimal_and_timestamp_payloads() -> None:
    value = {"d": Decimal("-12.5000"), "t": datetime(2020, 7, 3, 20, 36, 44, 181000, tzinfo=UTC)}
    check(simpleion.dumps(value, binary=True))
