"""QLDB's scalar functions through pyqldb against serve-qldb: the results of the Developer
Guide's examples (pages "EXISTS function in Amazon QLDB", "SIZE function in Amazon QLDB",
"SUBSTRING function in Amazon QLDB", "NULLIF function in Amazon QLDB") come back over the
Session API, and a documented error (``EXISTS(missing) -- error``) is a BadRequestException."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

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
