"""``BY`` on ``history(T)`` and on the committed view ``_ql_committed_T`` binds the document id.

Spec: "Querying revision history", https://docs.aws.amazon.com/qldb/latest/developerguide/working.history.html
and the SELECT command's ``BY id_alias`` ("binds to the id metadata field of each document"),
https://docs.aws.amazon.com/qldb/latest/developerguide/ql-reference.select.html. Before, such a
query returned no rows (a silent wrong answer).
"""

from __future__ import annotations

import pytest

from ledger import EmbeddedLedger


@pytest.mark.parametrize("literal", [True, False])
def test_by_on_history_and_committed_view_matches_the_document_id(
    led: EmbeddedLedger, literal: bool
) -> None:
    led.execute("CREATE TABLE Vehicle")
    [r] = led.execute("INSERT INTO Vehicle VALUE {'VIN': 'V1', 'Color': 'Blue'}")
    led.execute("INSERT INTO Vehicle VALUE {'VIN': 'V2', 'Color': 'Red'}")
    vid = r["documentId"]
    led.execute("UPDATE Vehicle AS v SET v.Color = 'Green' WHERE v.VIN = 'V1'")
    cond, args = (f"vid = '{vid}'", ()) if literal else ("vid = ?", (vid,))
    rows = led.execute(
        f"SELECT h.data.Color AS c, h.metadata.version AS n FROM history(Vehicle) AS h BY vid "
        f"WHERE {cond}",
        *args,
    )
    assert sorted((x["n"], x["c"]) for x in rows) == [(0, "Blue"), (1, "Green")]
    rows = led.execute(
        f"SELECT c.data.Color AS c, vid FROM _ql_committed_Vehicle AS c BY vid WHERE {cond}", *args
    )
    assert rows == [{"c": "Green", "vid": vid}]
