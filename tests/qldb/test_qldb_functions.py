"""QLDB's scalar functions through pyqldb against serve-qldb: the results of the Developer
Guide's examples (pages "EXISTS function in Amazon QLDB", "SIZE function in Amazon QLDB",
"SUBSTRING function in Amazon QLDB", "NULLIF function in Amazon QLDB") come back over the
Session API, and a documented error (``EXISTS(missing) -- error``) is a BadRequestException."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from ledger.timestamps import ion_text

from .conftest import Served, make_driver


def test_functions_answer_as_the_developer_guide_says(served: Served, ledger_name: str) -> None:
    driver = make_driver(served.url, ledger_name)
    try:
        driver.execute_lambda(lambda tx: tx.execute_statement("CREATE TABLE F"))
        driver.execute_lambda(lambda tx: tx.execute_statement("INSERT INTO F ?", {"one": 1}))

        def read(tx: Any) -> list[Any]:
            return list(
                tx.execute_statement(
                    "SELECT EXISTS(1) AS e1, EXISTS(`[1, 2, 3]`) AS e2, SIZE(`{foo: bar}`) AS s,"
                    " SUBSTRING('123456789', 0, 2) AS sub, NULLIF(1.0, 1) AS n FROM F"
                )
            )

        [row] = driver.execute_lambda(read)
        # EXISTS(1) -- false; EXISTS(`[1, 2, 3]`) -- true; SIZE(`{foo: bar}`) -- 1;
        # SUBSTRING('123456789', 0, 2) -- '1'; NULLIF(1.0, 1) -- null
        assert row["e1"] is False or row["e1"] == False  # noqa: E712 (an IonPyBool)
        assert row["e2"] == True  # noqa: E712
        assert row["s"] == 1
        assert row["sub"] == "1"
        assert row["n"] is None or type(row["n"]).__name__ == "IonPyNull"

        with pytest.raises(ClientError) as refused:
            driver.execute_lambda(
                lambda tx: list(tx.execute_statement("SELECT EXISTS(missing) AS e FROM F"))
            )
        assert refused.value.response["Error"]["Code"] == "BadRequestException"
    finally:
        driver.close()


def test_date_functions_cast_trim_and_txid_over_the_session_api(
    served: Served, ledger_name: str
) -> None:
    # Pages "DATE_ADD function", "DATE_DIFF function", "EXTRACT function", "TO_TIMESTAMP
    # function", "CAST function", "TRIM function" and "TXID function in Amazon QLDB".
    driver = make_driver(served.url, ledger_name)
    try:
        driver.execute_lambda(lambda tx: tx.execute_statement("CREATE TABLE D"))
        driver.execute_lambda(lambda tx: tx.execute_statement("INSERT INTO D ?", {"one": 1}))

        def read(tx: Any) -> tuple[list[Any], str]:
            rows = list(
                tx.execute_statement(
                    "SELECT DATE_ADD(hour, 1, `2017T`) AS a, DATE_DIFF(month, `2010T`, `2010-05T`)"
                    " AS d, EXTRACT(TIMEZONE_MINUTE FROM `2017-01-02T03:04:05+07:08`) AS e,"
                    " TO_TIMESTAMP('Feb 2016', 'MMM yyyy') AS t, CAST('12' AS integer) AS c,"
                    " TRIM(BOTH '12' FROM '1112211foobar22211122') AS r, TXID() AS x FROM D"
                )
            )
            return rows, tx.transaction_id

        [row], tx_id = driver.execute_lambda(read)
        # -- 2017-01-01T01:00Z; -- 4; -- 8; -- 2016-02T; -- 12; -- 'foobar'
        assert (ion_text(row["a"]), ion_text(row["t"])) == ("2017-01-01T01:00Z", "2016-02T")
        assert (row["d"], row["e"], row["c"], row["r"]) == (4, 8, 12, "foobar")
        assert row["x"] == tx_id  # TXID() is the transaction's id

        with pytest.raises(ClientError) as refused:
            driver.execute_lambda(
                lambda tx: list(tx.execute_statement("SELECT CAST('aa' AS integer) AS c FROM D"))
            )
        assert refused.value.response["Error"]["Code"] == "BadRequestException"
    finally:
        driver.close()
