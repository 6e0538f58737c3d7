"""The logic of the issue 14 benchmark parts that can be wrong without any speed involved: which
parts run, the protocol-cost estimate of the QLDB cycle and its target, the re-packing of a stream
into events of a size, the profile's grouping by module, the checks that a cycle did the work its
figure is about. A part runs alone (``python -m bench PART``). No speed is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench import linearity, opensearch, profiles, qldb
from bench.__main__ import PARTS, selected
from bench.common import REPO_ROOT, BenchError, run_child
from bench.cycle import check_cycle
from bench.figures import rows


def test_parts_are_chosen_in_run_order_and_unknown_ones_refused() -> None:
    assert selected(None) == list(PARTS) == selected([])
    assert selected(["profile", "qldb", "lag"]) == ["lag", "qldb", "profile"]
    with pytest.raises(BenchError, match="unknown benchmark parts \\['nope'\\]"):
        selected(["qldb", "nope"])


def test_protocol_cost_counts_a_no_op_per_command() -> None:
    counts = {"StartSession": 1, "StartTransaction": 5, "CommitTransaction": 5,
              "ExecuteStatement": 40, "FetchPage": 2, "EndSession": 1}  # fmt: skip
    # 5 empty transactions at 2 ms, 42 statements at (3 - 2) ms each.
    assert qldb.protocol_seconds(counts, 0.002, 0.003) == pytest.approx(5 * 0.002 + 42 * 0.001)
    # A trivial statement measured cheaper than nothing (noise) adds nothing, never a credit.
    assert qldb.protocol_seconds(counts, 0.002, 0.001) == pytest.approx(5 * 0.002)


def _cycle(seconds: float, commands: dict[str, int] | None = None) -> dict[str, Any]:
    return {"cycle_seconds": seconds, "statements": 10, "revisions": 0, "applies": 3,
            "commands": commands or {}, "command_wait_seconds": seconds / 2}  # fmt: skip


def test_qldb_target_is_embedded_plus_the_protocol_cost() -> None:
    template = {"blocks": 500, "block_statements": [1, 1] + [2] * 498}
    noop = {"empty_transaction_seconds": 0.002, "statement_transaction_seconds": 0.003}
    commands = {"CommitTransaction": 100, "ExecuteStatement": 1000}  # 0.2 s + 1.0 s of no-ops
    # First 100 blocks: 1 + 1 + 98 * 2 source statements; embedded 1 s, so the budget is 2.2 s.
    within = qldb.summarize(template, 100, [_cycle(1.0)], [_cycle(2.1, commands)], [noop])
    assert within["source_statements"] == 198
    assert within["protocol_seconds"] == pytest.approx(1.2)
    assert within["ratio_to_embedded_plus_protocol"] == pytest.approx(2.1 / 2.2)
    assert within["target_met"] is True
    assert within["qldb_to_embedded"] == pytest.approx(1.0 / 2.1)
    assert within["commands_per_block"] == pytest.approx(11.0)
    slower = qldb.summarize(template, 100, [_cycle(1.0)], [_cycle(2.5, commands)], [noop])
    assert slower["target_met"] is False
    assert slower["ratio_to_embedded_plus_protocol"] == pytest.approx(2.5 / 2.2)


def test_command_counter_counts_each_command_kind() -> None:
    counter = qldb.CommandCounter()
    counter.params({"SessionToken": "t", "StartTransaction": {}})
    counter.params({"SessionToken": "t", "ExecuteStatement": {"Statement": "SELECT"}})
    counter.params({"SessionToken": "t", "ExecuteStatement": {"Statement": "SELECT"}})
    assert counter.counts == {"StartTransaction": 1, "ExecuteStatement": 2}
    counter.before()
    counter.after()
    counter.after()  # an answer without a request started is not timed twice
    assert counter.seconds >= 0.0


def test_repack_keeps_order_and_sizes() -> None:
    events = [{"Records": [{"n": i} for i in range(k, k + 7)]} for k in range(0, 35, 7)]
    packed = linearity.repack(events, 10, 33)
    assert [len(e["Records"]) for e in packed] == [10, 10, 10, 3]
    assert [r["n"] for e in packed for r in e["Records"]] == list(range(33))
    assert [len(e["Records"]) for e in linearity.repack(events, 33, 33)] == [33]
    with pytest.raises(BenchError, match="35 Kinesis records, fewer than 40"):
        linearity.repack(events, 10, 40)
    with pytest.raises(BenchError):
        linearity.repack(events, 0, 10)


def test_linearity_ratio_and_its_tolerance_both_ways() -> None:
    small = {"seconds": 2.0, "records": 1000}
    slower = {"seconds": 2.4, "records": 1000}
    assert linearity.per_record_ratio(slower, small) == pytest.approx(1.2)
    assert linearity.per_record_ratio({"seconds": 1.0, "records": 500}, small) == pytest.approx(1)
    assert linearity.within(1.19) and linearity.within(0.84)
    assert not linearity.within(1.21) and not linearity.within(0.82)


def test_profile_groups_by_module_and_gives_builtins_to_their_callers(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    own = str(root / "ledger" / "engine.py")
    pkg = str(root / "buffer" / "__init__.py")
    lib = "/x/lib/python3.11/site-packages/amazon/ion/simpleion.py"
    lark = "/x/lib/python3.11/site-packages/lark/lark.py"
    assert profiles.module_group(own, root) == "ledger.engine"
    assert profiles.module_group(pkg, root) == "buffer"
    assert profiles.module_group(lib, root) == "amazon.ion"
    assert profiles.module_group(lark, root) == "lark"
    assert profiles.module_group("<frozen importlib._bootstrap>", root) == "stdlib"
    caller = (own, 10, "execute")
    stats = {
        caller: (1, 1, 0.5, 2.0, {}),
        (lib, 1, "loads"): (1, 1, 0.25, 0.25, {caller: (1, 1, 0.25, 0.25)}),
        ("~", 0, "<built-in method builtins.isinstance>"): (
            3, 3, 0.75, 0.75, {caller: (2, 2, 0.5, 0.5), (lib, 1, "loads"): (1, 1, 0.25, 0.25)}
        ),
        ("~", 0, "<method 'execute' of 'sqlite3.Connection' objects>"): (
            1, 1, 1.0, 1.0, {caller: (1, 1, 1.0, 1.0)}
        ),
    }  # fmt: skip
    times = profiles.group_times(stats, root)
    assert times == {"ledger.engine": 1.0, "amazon.ion": 0.5, profiles.SQLITE_GROUP: 1.0}
    shares = profiles.shares(times)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["ledger.engine"] == pytest.approx(0.4)


def test_profile_table_columns_add_up_to_the_whole() -> None:
    paths = {
        "ingest": {"shares": {"a": 0.5, "b": 0.3, "c": 0.2}, "profiled_seconds": 1.0},
        "statements": {"shares": {"a": 0.1, "d": 0.9}, "profiled_seconds": 2.0},
    }
    groups = profiles.top_groups({p: r["shares"] for p, r in paths.items()}, n=2)
    assert groups == ["d", "a", "b"]  # c is neither path's top 2
    header, body = profiles.table_rows({"paths": paths, "groups": groups})
    assert header == ["self time in (module)", "ingest", "settle cycle, statements"]
    assert body[-2] == ["everything else", "20%", "0%"]
    assert [r[0] for r in body[:3]] == ["`d`", "`a`", "`b`"]


def _report(**kw: Any) -> SimpleNamespace:
    base = {"blocks": 1000, "halted": False, "halt_reason": None, "held_by_window": 10_000,
            "deadline_reached": False, "quarantined": 0}  # fmt: skip
    return SimpleNamespace(**{**base, **kw})


def test_a_cycle_that_did_other_work_than_its_figure_is_refused() -> None:
    check_cycle(_report(), release=1000, backlog=False)
    check_cycle(_report(held_by_window=0, deadline_reached=True), release=1000, backlog=True)
    with pytest.raises(BenchError, match="replayed 900 blocks"):
        check_cycle(_report(blocks=900), release=1000, backlog=False)
    with pytest.raises(BenchError):  # the window held nothing: not the figure's cycle
        check_cycle(_report(held_by_window=0), release=1000, backlog=False)
    with pytest.raises(BenchError):  # a backlog cycle that ran to its end replayed the backlog
        check_cycle(_report(deadline_reached=False), release=1000, backlog=True)
    with pytest.raises(BenchError):
        check_cycle(_report(deadline_reached=True, halted=True), release=1000, backlog=True)


def _os_run(
    settle: dict[str, int], seconds: float, answers: dict[str, int], warnings: tuple[str, ...] = ()
) -> dict[str, Any]:
    def phase(requests: dict[str, int], **more: Any) -> dict[str, Any]:
        return {"requests": requests, "seconds": seconds, "answers": answers, **more}

    return {
        "ingest": phase({"POST _bulk": 2, "POST _mget": 2}),
        "settle": phase(settle, warnings=list(warnings)),
        "idle": phase({"POST _mget": 3}),
    }


def test_opensearch_request_mismatch_says_what_differed_in_each_run() -> None:
    same = {"POST _bulk": 18, "POST _search": 17}
    runs = {
        "sqlite": [],
        "opensearch_0ms": [_os_run({**same, "POST _mget": 5}, 9.3, {"forward:200": 40})],
        "opensearch_5ms": [
            _os_run({**same, "POST _mget": 5}, 9.6, {"forward:200": 40}),
            _os_run(
                {**same, "POST _mget": 6},
                31.0,
                {"forward:200": 40, "forward:409": 1},
                ("settler.cycle: a group of 100 blocks failed (why); applying one by one",),
            ),
        ],
    }
    with pytest.raises(BenchError) as caught:
        opensearch.summarize(runs)
    message = str(caught.value)
    assert message.startswith("the settle phase sent different requests in different runs: ")
    assert "opensearch_0ms #1: POST _mget 5 (9.3 s; forward:200 40)" in message
    assert "opensearch_5ms #1: POST _mget 5 (9.6 s; forward:200 40)" in message
    assert (
        "opensearch_5ms #2: POST _mget 6 (31.0 s; forward:200 40, forward:409 1; warned: "
        "settler.cycle: a group of 100 blocks failed (why); applying one by one)"
    ) in message
    assert "_search" not in message  # only the kinds whose counts differ


def test_a_part_runs_alone_and_writes_only_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "linearity", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    assert set(results) == {"meta", "ingest_linearity"}
    assert results["meta"]["parts"] == ["linearity"]
    li = results["ingest_linearity"]
    assert set(li["sizes"]) == {str(li["small"]), str(li["big"])}
    for size in li["sizes"].values():
        assert size["events"] * size["records_per_event"] >= li["records"]
    assert "ingest cost per record in events of" in done.stdout
    assert len(rows(results)) == 1


def test_a_child_in_another_tree_runs_that_trees_code(tmp_path: Path) -> None:
    """``bench.compare`` runs the same child module in two work trees: each must import its
    own tree's code, and a failure says which tree."""
    tree = tmp_path / "tree"
    (tree / "probe").mkdir(parents=True)
    (tree / "probe" / "__init__.py").write_text("")
    (tree / "probe" / "__main__.py").write_text(
        "import json, os, sys\n"
        "import probe\n"
        "args = json.loads(sys.argv[1])\n"
        "if args.get('fail'):\n"
        "    sys.exit('asked to fail')\n"
        "print(json.dumps({'cwd': os.getcwd(), 'from': probe.__file__, **args}))\n"
    )
    out = run_child("probe", {"n": 1}, tree=tree)
    assert out == {"cwd": str(tree), "from": str(tree / "probe" / "__init__.py"), "n": 1}
    with pytest.raises(BenchError, match=f"in {tree} failed with exit code 1:\nasked to fail"):
        run_child("probe", {"fail": True}, tree=tree)
