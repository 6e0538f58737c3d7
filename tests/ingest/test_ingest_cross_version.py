"""The ingest Lambda (amazon.ion 0.15, C extension) and local runs (0.9.3) must decode the same
records to the same ids and fingerprints, or a record re-ingested from the Firehose backup by the
CLI would be taken for a conflict. Runs the other environment in a subprocess; skipped when that
environment has not been built (``make test`` builds both)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest
from ingest_helpers import REPO, fixtures_dir

pytestmark = pytest.mark.ingest_env

# Ion that each library version reads into different Python objects: symbols and annotations
# (SymbolTokens with or without sids), bools (IonPyInt in 0.9.3), typed nulls, timestamp
# precisions, decimals with trailing zeros, floats.
VARIED = """
{
  qldbStreamArn:
    "arn:aws:qldb:ap-northeast-1:670756400362:stream/test-wallet/0FyCS5aYSysK7aD7h8wvp3",
  recordType: "REVISION_DETAILS",
  payload: {
    tableInfo: { tableName: "Wallet", tableId: "AYj94Ipn0re4Fr2PDgadpl" },
    revision: {
      blockAddress: { strandId: "A2mzwAutFNnJm2ho9nls4q", sequenceNo: 27 },
      hash: {{KGQhnyXb/BltXwCY9WPc0y1B8JLk/ok6w5YiaKweOvc=}},
      data: {
        sym: abc, ann: unit::1, flag: true, off: false, one: 1, tn: null.string, nn: null,
        year: 2020T, day: 2020-07-03T, ms: 2020-07-03T20:36:44.181-07:00, dec: 1.50,
        f: 1e0, list: [a::b, (x y)], clob: {{"text"}}, nested: { deep: [ { x: -0.0 } ] }
      },
      metadata: { id: "59NbC9MoyMw4vsTsoNROxX", version: 1,
                  txTime: 2023-09-23T07:45:11.121Z, txId: "GE2lVViZmSY6QHl0OmvsmN" }
    }
  }
}
"""

SCRIPT = r"""
import json, sys
from amazon.ion import simpleion
from ingest.decode import decode_bytes, decode_file
import pathlib
out = []
for path in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    try:
        items = decode_file(path)
    except Exception as exc:
        out.append([path.name, type(exc).__name__])
        continue
    for i in items:
        out.append([path.name, getattr(i, "fingerprint", None) or i.kind,
                    getattr(getattr(i, "record", None), "record_id", None)])
text = sys.stdin.read()
for form, data in (("text", text.encode()),
                   ("binary", simpleion.dumps(simpleion.loads(text), binary=True))):
    for i in decode_bytes(data, name=form):
        out.append([form, getattr(i, "fingerprint", None) or i.reason,
                    getattr(getattr(i, "record", None), "record_id", None)])
print(json.dumps(out))
"""


def _run(python: str) -> list[list[str | None]]:
    done = subprocess.run(
        [python, "-c", SCRIPT, str(fixtures_dir())],
        input=VARIED,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    result: list[list[str | None]] = json.loads(done.stdout)
    return result


def test_both_amazon_ion_versions_decode_to_the_same_fingerprints() -> None:
    mine = version("amazon.ion")
    other = REPO / (".venv" if mine.startswith("0.15") else ".venv-ingest") / "bin" / "python"
    if not other.exists():
        pytest.skip(f"{other} not built yet (make test builds both environments)")
    here = _run(sys.executable)
    there = _run(str(other))
    assert here == there
    # The text and binary reads of the varied record are one record with one fingerprint.
    varied = [row for row in here if row[0] in ("text", "binary")]
    assert len(varied) == 2 and varied[0][1:] == varied[1][1:]
    assert varied[0][2] is not None  # decoded, not rejected
