"""The whole settle cycle through ``serve-qldb`` and pyqldb (grouped), beside the embedded
cycle of the same workload, and the protocol's own cost measured as no-op round trips.

The server is the CLI's ``qldb-settle serve-qldb --ledger embedded:DIR/`` (one process for the
whole benchmark, a fresh ledger name per repetition), started and stopped (SIGTERM) by the
parent. Each repetition is a fresh child on a copy of a replay template (``bench.replay.build``:
blocks replayed by statements, or from revisions), opened through the composition
(``compose.roots.open_buffer`` / ``open_destination`` from ``Settings``: ``sqlite:COPY`` and
``embedded:PATH`` or ``qldb:NAME`` with ``qldb_endpoint``), one ``settle`` call timed as of the
instant that settles the template's first ``blocks`` blocks (the rest held by the window: the
QLDB cycle runs at tens of blocks per second), with the settler's default group size (QLDB's 40
documents per transaction split the groups further). The embedded and the QLDB child alternate.

In the QLDB child every Session API command the driver sends is counted by kind (a botocore
event handler on boto3's default session, which pyqldb's client is made from), with the
wall-clock time the client waited for its answers.

The no-op round trip (``noop``, a child of its own after each pair): on a fresh, empty ledger of
the same server, ``NOOP_TRANSACTIONS`` pyqldb transactions that do nothing (StartTransaction and
CommitTransaction) and as many that run one trivial statement (``NOOP_STATEMENT``, a read of the
empty catalogue), alternating. The protocol's own cost of a cycle is then estimated as what its
commands would cost as no-ops: one empty transaction per commit, plus one trivial statement's
extra per ``ExecuteStatement`` and ``FetchPage`` (``protocol_seconds``). The figure the issue
asks about is ``qldb cycle / (embedded cycle + protocol cost)``, paired per repetition: at most
1.00x means the QLDB cycle is not slower than the embedded one by more than the protocol's own
cost.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, BenchError, Json, median, run_child

MODULE = "bench.qldb"
NOOP_TRANSACTIONS = 100
NOOP_STATEMENT = "SELECT * FROM information_schema.user_tables"
MODES = ("statements", "revisions")
# Commands that are statements inside a transaction (the rest open, commit or end something).
STATEMENT_COMMANDS = ("ExecuteStatement", "FetchPage")


class CommandCounter:
    """Counts the QLDB Session API commands a client sends, by kind, and the wall-clock time it
    waits for their answers (botocore's ``before-call``/``after-call`` events)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.seconds = 0.0
        self._started: float | None = None

    def params(self, params: Mapping[str, Any], **_: Any) -> None:
        for name in params:
            if name != "SessionToken":
                self.counts[name] = self.counts.get(name, 0) + 1

    def before(self, **_: Any) -> None:
        self._started = time.perf_counter()

    def after(self, **_: Any) -> None:
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None

    def install(self) -> None:
        """On boto3's default session: every qldb-session client made after this is counted."""
        import boto3

        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        events = boto3.DEFAULT_SESSION.events
        events.register("provide-client-params.qldb-session.SendCommand", self.params)
        events.register("before-call.qldb-session.SendCommand", self.before)
        events.register("after-call.qldb-session.SendCommand", self.after)


def protocol_seconds(
    counts: Mapping[str, float], empty_transaction_s: float, statement_transaction_s: float
) -> float:
    """What a cycle's commands cost as no-ops: an empty transaction per commit, and a trivial
    statement's extra (over the empty transaction) per statement command."""
    statements = sum(counts.get(name, 0) for name in STATEMENT_COMMANDS)
    extra = max(0.0, statement_transaction_s - empty_transaction_s)
    return counts.get("CommitTransaction", 0) * empty_transaction_s + statements * extra


def child_cycle(args: Json) -> Json:
    from bench.replay import (
        RoundTripDestination,
        check_replayed,
        cycle_figures,
        settle_then_close,
        timed_call,
        warm_up,
    )
    from compose.roots import open_buffer, open_destination
    from compose.settings import Settings

    warm_up()
    counter = CommandCounter()
    with tempfile.TemporaryDirectory(prefix="bench-qldb-") as tmp:
        copy = Path(tmp) / "buffer.db"
        shutil.copyfile(args["template"], copy)
        if args["destination"] == "qldb":
            counter.install()
            settings = Settings(
                buffer=f"sqlite:{copy}",
                destination=f"qldb:{args['ledger_name']}",
                qldb_endpoint=args["url"],
            )
        else:
            settings = Settings(buffer=f"sqlite:{copy}", destination=f"embedded:{tmp}/replica.db")
        buffer = open_buffer(settings)
        destination = RoundTripDestination(open_destination(settings))
        report, t = settle_then_close(buffer, destination, args["now"], around=timed_call)
    check_replayed(report, int(args["blocks"]), f"{args['destination']}: ")
    return {
        "destination": args["destination"],
        **cycle_figures(report, destination, t),
        "commands": counter.counts,
        "command_wait_seconds": counter.seconds,
    }


def child_noop(args: Json) -> Json:
    """Empty transactions and one-trivial-statement transactions, alternating, on a fresh ledger."""
    from destination.qldb import LOCAL_CREDENTIALS, check_botocore

    check_botocore()
    from pyqldb.driver.qldb_driver import QldbDriver

    counter = CommandCounter()
    counter.install()
    driver = QldbDriver(
        args["ledger_name"],
        endpoint_url=args["url"],
        region_name="us-east-1",
        aws_access_key_id=LOCAL_CREDENTIALS[0],
        aws_secret_access_key=LOCAL_CREDENTIALS[1],
    )
    n = int(args["transactions"])
    empty, statement = [], []
    try:
        driver.execute_lambda(lambda ex: list(ex.execute_statement(NOOP_STATEMENT)))  # warm-up
        before = dict(counter.counts)
        for _ in range(n):
            start = time.perf_counter()
            driver.execute_lambda(lambda ex: None)
            empty.append(time.perf_counter() - start)
            start = time.perf_counter()
            driver.execute_lambda(lambda ex: list(ex.execute_statement(NOOP_STATEMENT)))
            statement.append(time.perf_counter() - start)
    finally:
        driver.close()
    commits = counter.counts.get("CommitTransaction", 0) - before.get("CommitTransaction", 0)
    if commits != 2 * n:
        raise BenchError(f"{commits} commits for {2 * n} no-op transactions (retried?)")
    return {
        "transactions": n,
        "statement": NOOP_STATEMENT,
        "empty_transaction_seconds": median(empty),
        "statement_transaction_seconds": median(statement),
    }


def _work(args: Json) -> Json:
    if args["mode"] == "cycle":
        return child_cycle(args)
    if args["mode"] == "noop":
        return child_noop(args)
    raise BenchError(f"unknown mode {args['mode']!r}")


@contextmanager
def serve_qldb(root: Path) -> Iterator[str]:
    """``qldb-settle serve-qldb`` over the folder ``root`` (a ledger per name); its URL."""
    root.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qldb_settle.cli", "serve-qldb", "--ledger", f"embedded:{root}/"],
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise BenchError(f"serve-qldb did not start (printed {url!r})")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pair(embedded: Json, qldb: Json, noop: Json) -> float:
    """QLDB cycle / (embedded cycle + the QLDB cycle's commands as no-ops), one repetition."""
    budget = embedded["cycle_seconds"] + protocol_seconds(
        qldb["commands"], noop["empty_transaction_seconds"], noop["statement_transaction_seconds"]
    )
    return float(qldb["cycle_seconds"] / budget)


def summarize(
    template: Json, blocks: int, embedded: list[Json], qldb: list[Json], noop: list[Json]
) -> Json:
    """One mode's figures from its paired repetitions over the template's first ``blocks``
    blocks (medians; the ratio paired per repetition)."""
    statements = sum(template["block_statements"][:blocks])
    e_s = median([r["cycle_seconds"] for r in embedded])
    q_s = median([r["cycle_seconds"] for r in qldb])
    empty_s = median([n["empty_transaction_seconds"] for n in noop])
    stmt_s = median([n["statement_transaction_seconds"] for n in noop])
    kinds = sorted({k for r in qldb for k in r["commands"]})
    commands = {k: median([float(r["commands"].get(k, 0)) for r in qldb]) for k in kinds}
    protocol_s = protocol_seconds(commands, empty_s, stmt_s)
    ratios = [_pair(e, q, n) for e, q, n in zip(embedded, qldb, noop, strict=True)]
    over = median(ratios)
    return {
        "blocks": blocks,
        "source_statements": statements,
        "replayed_statements": qldb[0]["statements"],
        "replayed_revisions": qldb[0]["revisions"],
        "embedded_cycle_blocks_per_s": blocks / e_s,
        "embedded_cycle_statements_per_s": statements / e_s,
        "qldb_cycle_blocks_per_s": blocks / q_s,
        "qldb_cycle_statements_per_s": statements / q_s,
        "qldb_applies": qldb[0]["applies"],
        "qldb_to_embedded": e_s / q_s,
        "commands": commands,
        "commands_per_block": sum(commands.values()) / blocks,
        "command_wait_share": median(
            [r["command_wait_seconds"] / r["cycle_seconds"] for r in qldb]
        ),
        "noop_empty_transaction_ms": empty_s * 1000,
        "noop_statement_transaction_ms": stmt_s * 1000,
        "protocol_seconds": protocol_s,
        "protocol_blocks_per_s": blocks / (e_s + protocol_s),
        "ratio_to_embedded_plus_protocol": over,
        "paired_ratios": ratios,
        "target": "not slower than the embedded cycle by more than the protocol's own cost",
        "target_met": over <= 1.0,
    }


def measure(templates: dict[str, Json], *, reps: int, workdir: Path, blocks: int) -> Json:
    """Per replay mode, ``reps`` repetitions of (embedded cycle, QLDB cycle, no-op round trips),
    each cycle settling the template's first ``blocks`` blocks."""
    from bench.replay import _now_after
    from destination.qldb import check_botocore
    from runtime.errors import ConfigError

    try:
        check_botocore()
    except ConfigError as exc:
        return {"skipped": str(exc)}
    modes: dict[str, Json] = {}
    n = 0
    with serve_qldb(workdir / "ledgers") as url:
        for mode in MODES:
            template = templates[mode]
            n_blocks = min(blocks, int(template["blocks"]))
            common = {
                "template": template["path"],
                "now": _now_after(template["commits"], n_blocks),
                "blocks": n_blocks,
            }
            runs: dict[str, list[Json]] = {"embedded": [], "qldb": [], "noop": []}
            for _ in range(reps):
                n += 1
                runs["embedded"].append(
                    run_child(
                        MODULE,
                        {"mode": "cycle", "destination": "embedded", **common},
                    )
                )
                runs["qldb"].append(
                    run_child(
                        MODULE,
                        {
                            "mode": "cycle",
                            "destination": "qldb",
                            "url": url,
                            "ledger_name": f"bench-{n}",
                            **common,
                        },
                        timeout=3600,
                    )
                )
                runs["noop"].append(
                    run_child(
                        MODULE,
                        {
                            "mode": "noop",
                            "url": url,
                            "ledger_name": f"noop-{n}",
                            "transactions": NOOP_TRANSACTIONS,
                        },
                    )
                )
            modes[mode] = summarize(
                template, n_blocks, runs["embedded"], runs["qldb"], runs["noop"]
            )
    return {
        "repetitions": reps,
        "server": "qldb-settle serve-qldb (embedded ledger), loopback, its own process",
        "noop_transactions": NOOP_TRANSACTIONS,
        "noop_statement": NOOP_STATEMENT,
        "modes": modes,
    }


if __name__ == "__main__":
    from bench.common import child_main

    child_main(_work)
