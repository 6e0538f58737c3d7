"""Date and time functions, checked against the examples on their pages of the QLDB Developer
Guide (https://docs.aws.amazon.com/qldb/latest/developerguide/ql-functions.NAME.html): each case
quotes the page's ``expression -- result``. Timestamps are compared by their Ion text, so the
precision, the fractional seconds and the offset are checked, not only the instant.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ledger import EmbeddedLedger, ParseError, StatementError
from ledger.evaluate import kind
from ledger.timestamps import ion_text
from tests.ledger.function_cases import is_null, select_value


def _shown(v: Any) -> Any:
    return ion_text(v) if kind(v) == "timestamp" else v


# "DATE_ADD function in Amazon QLDB"
DATE_ADD = [
    ("DATE_ADD(year, 5, `2010-01-01T`)", "2015-01-01T"),
    ("DATE_ADD(month, 1, `2010T`)", "2010-02T"),  # (result adds precision as necessary)
    ("DATE_ADD(month, 13, `2010T`)", "2011-02T"),
    ("DATE_ADD(day, -1, `2017-01-10T`)", "2017-01-09T"),
    ("DATE_ADD(hour, 1, `2017T`)", "2017-01-01T01:00Z"),
    ("DATE_ADD(hour, 1, `2017-01-02T03:04Z`)", "2017-01-02T04:04Z"),
    ("DATE_ADD(minute, 1, `2017-01-02T03:04:05.006Z`)", "2017-01-02T03:05:05.006Z"),
    ("DATE_ADD(second, 1, `2017-01-02T03:04:05.006Z`)", "2017-01-02T03:04:06.006Z"),
    # Beyond the page: the offset is kept, a month ends on its last day.
    ("DATE_ADD(hour, 2, `2017-01-02T23:30+05:30`)", "2017-01-03T01:30+05:30"),
    ("DATE_ADD(month, 1, `2016-01-31T`)", "2016-02-29T"),
    ("DATE_ADD(second, 1, `2017-01-02T03:04Z`)", "2017-01-02T03:04:01Z"),
]

# "DATE_DIFF function in Amazon QLDB"
DATE_DIFF = [
    ("DATE_DIFF(year, `2010-01-01T`, `2011-01-01T`)", 1),
    ("DATE_DIFF(year, `2010-12T`, `2011-01T`)", 0),  # (must be at least 12 months apart)
    ("DATE_DIFF(month, `2010T`, `2010-05T`)", 4),
    ("DATE_DIFF(month, `2010T`, `2011T`)", 12),
    ("DATE_DIFF(month, `2011T`, `2010T`)", -12),
    ("DATE_DIFF(month, `2010-12-31T`, `2011-01-01T`)", 0),  # (at least a full month apart)
    ("DATE_DIFF(day, `2010-01-01T23:00Z`, `2010-01-02T01:00Z`)", 0),  # (at least 24 hours)
    ("DATE_DIFF(hour, `2010-01-01T23:00Z`, `2010-01-02T01:00+01:00`)", 1),
    ("DATE_DIFF(second, `2010-01-01T00:00:10Z`, `2010-01-01T00:00:00.5Z`)", -9),
]

# "EXTRACT function in Amazon QLDB"
EXTRACT = [
    ("EXTRACT(YEAR FROM `2010-01-01T`)", 2010),
    ("EXTRACT(MONTH FROM `2010T`)", 1),  # (equivalent to 2010-01-01T00:00:00.000Z)
    ("EXTRACT(MONTH FROM `2010-10T`)", 10),
    ("EXTRACT(HOUR FROM `2017-01-02T03:04:05+07:08`)", 3),
    ("EXTRACT(MINUTE FROM `2017-01-02T03:04:05+07:08`)", 4),
    ("EXTRACT(TIMEZONE_HOUR FROM `2017-01-02T03:04:05+07:08`)", 7),
    ("EXTRACT(TIMEZONE_MINUTE FROM `2017-01-02T03:04:05+07:08`)", 8),
    ("EXTRACT(TIMEZONE_MINUTE FROM `2017-01-02T03:04:05-08:30`)", -30),
    ("EXTRACT(YEAR FROM null)", None),  # an unknown timestamp gives NULL
    ("EXTRACT(YEAR FROM missing)", None),
]

# "TO_TIMESTAMP function in Amazon QLDB"
TO_TIMESTAMP = [
    ("TO_TIMESTAMP('2007T')", "2007T"),
    ("TO_TIMESTAMP('2007-02-23T12:14:33.079-08:00')", "2007-02-23T12:14:33.079-08:00"),
    ("TO_TIMESTAMP('2016', 'y')", "2016T"),
    ("TO_TIMESTAMP('2016', 'yyyy')", "2016T"),
    ("TO_TIMESTAMP('02-2016', 'MM-yyyy')", "2016-02T"),
    ("TO_TIMESTAMP('Feb 2016', 'MMM yyyy')", "2016-02T"),
    ("TO_TIMESTAMP('February 2016', 'MMMM yyyy')", "2016-02T"),
    # The TO_STRING page's strings read back by their formats ("Timestamp format strings").
    ("TO_TIMESTAMP('july 20, 1969 8:18 pm', 'MMMM d, y h:m a')", "1969-07-20T20:18-00:00"),
    # yy: 2000 is added to values below 70, 1900 to the others (the page's two-digit years).
    ("TO_TIMESTAMP('7-20-69', 'M-d-yy')", "2069-07-20T"),
    ("TO_TIMESTAMP('07-20-70', 'MM-dd-yy')", "1970-07-20T"),
    ("TO_TIMESTAMP('1969-07-20T20:18:00Z', 'y-MM-dd''T''H:m:ssX')", "1969-07-20T20:18:00Z"),
    (
        "TO_TIMESTAMP('1969-07-20T20:18:00.25+0800', 'y-MM-dd''T''H:m:ss.SSXXXX')",
        "1969-07-20T20:18:00.25+08:00",
    ),
    ("TO_TIMESTAMP(null)", None),
]


@pytest.mark.parametrize(("expression", "expected"), DATE_ADD + DATE_DIFF + EXTRACT + TO_TIMESTAMP)
def test_date_function_returns_the_developer_guide_result(
    led: EmbeddedLedger, expression: str, expected: Any
) -> None:
    got = select_value(led, expression)
    if expected is None:
        assert is_null(got)
    else:
        assert _shown(got) == expected
        assert type(got) is not bool


@pytest.mark.parametrize(
    "expression",
    [
        "DATE_ADD(day, 1.5, `2017-01-10T`)",  # the interval is an integer
        "DATE_ADD(day, 1, '2017-01-10T')",  # a string is not a timestamp
        "DATE_ADD(year, 9000, `2017T`)",  # past Ion's year 9999
        "DATE_DIFF(day, `2017T`, 3)",
        "EXTRACT(YEAR FROM 'x')",
        "TO_TIMESTAMP('2016-13', 'yyyy-MM')",  # no month 13
        "TO_TIMESTAMP('2016', 'yyyy-MM')",  # the string ends early
        "TO_TIMESTAMP('16', 'yyyy')",  # yyyy needs its zero padding
        "TO_TIMESTAMP('2016-02', 'yyyy-dd')",  # a day without a month
        "TO_TIMESTAMP('2016 8', 'yyyy h')",  # h without AM/PM
        "TO_TIMESTAMP('2016', 'yyyy Q')",  # not a documented symbol
        "TO_TIMESTAMP('2016-02-30T', 'yyyy-MM-dd''T''')",  # no February 30
        "TO_TIMESTAMP('nope')",
        "TO_TIMESTAMP(2016)",
    ],
)
def test_malformed_date_calls_are_errors(led: EmbeddedLedger, expression: str) -> None:
    with pytest.raises(StatementError):
        select_value(led, expression)


@pytest.mark.parametrize(
    "expression",
    [
        "DATE_ADD(week, 1, `2017T`)",  # not one of the six date parts
        "DATE_ADD(year, `2017T`)",
        "DATE_DIFF('year', `2017T`, `2018T`)",  # the part is a word, not a string
        "EXTRACT(week FROM `2017T`)",
        "EXTRACT(YEAR, `2017T`)",
    ],
)
def test_malformed_date_forms_are_refused_at_parse(led: EmbeddedLedger, expression: str) -> None:
    with pytest.raises(ParseError):
        select_value(led, expression)


def test_txid_is_the_transaction_id_its_documents_carry(led: EmbeddedLedger) -> None:
    # "TXID function in Amazon QLDB": the value assigned to a document's txId metadata field
    # when the current transaction is committed.
    led.execute("CREATE TABLE T")
    tx = led.begin()
    tx.execute("INSERT INTO T VALUE {'tx': TXID()}")
    [seen] = tx.execute("SELECT VALUE TXID() FROM T")
    tx.commit()
    [row] = led.execute("SELECT r.data.tx AS tx, r.metadata.txId AS id FROM _ql_committed_T AS r")
    assert row["tx"] == row["id"] == seen == tx.id
    [other] = led.execute("SELECT VALUE TXID() FROM T")
    assert other != tx.id  # each transaction its own


def test_utcnow_is_the_statement_time_with_milliseconds(led: EmbeddedLedger, clock: Any) -> None:
    # "UTCNOW function in Amazon QLDB": the current time in UTC as a timestamp; its examples
    # show milliseconds (2019-12-27T20:12:16.999Z). Every call of one statement sees one time.
    led.execute("CREATE TABLE T")
    led.execute("INSERT INTO T << {'a': 1}, {'a': 2} >>")
    before = clock.now
    rows = led.execute("SELECT UTCNOW() AS n, UTCNOW() AS m FROM T")
    at = before + timedelta(milliseconds=5)  # the statement's one reading of the clock
    texts = {ion_text(r[k]) for r in rows for k in ("n", "m")}
    assert len(texts) == 1
    [text] = texts
    assert text == at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


@pytest.mark.parametrize("name", ["ABS(-1)", "MOD(7, 2)", "CARDINALITY(`[1, 2]`)"])
def test_functions_qldb_does_not_list_are_refused(led: EmbeddedLedger, name: str) -> None:
    # "PartiQL functions in Amazon QLDB": "Any SQL functions that aren't included in this list
    # are not currently supported in QLDB." ABS, MOD and CARDINALITY have no page there.
    with pytest.raises(ParseError, match="is not a function QLDB supports"):
        select_value(led, name)


def test_a_statement_calling_txid_or_utcnow_is_not_replayed_from_its_text() -> None:
    # The source's transaction id and time are not the replica's: replaying the text would
    # write other values than the source's revisions hold.
    from ledger.classify import classify

    for text, name in (("INSERT INTO T VALUE {'tx': TXID()}", "txid()"),
                       ("UPDATE T AS t SET t.at = UTCNOW()", "utcnow()")):  # fmt: skip
        got = classify(text)
        assert got.kind == "nondeterministic" and name in got.reason
    assert classify("INSERT INTO T VALUE {'d': DATE_ADD(day, 1, `2017T`)}").kind == "literal"
