"""One simulated workload driven through real ``qldb-settle`` processes, chunk by chunk in arrival
order: ``ingest`` the chunk's events, then ``settle --now <the chunk's delivery instant>``, as the
ingest Lambda and the scheduled settler would. Faults are injected into these processes; after a
faulted process the same step runs again un-faulted (as Lambda retries a batch and the schedule
runs the settler again) until it succeeds. At the end the pipeline drains, counts every record
(``accounting``) and proves the replica (``verify --source``).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

from .accounting import (
    Accounting,
    BlockAccount,
    BufferInventory,
    StreamInventory,
    account,
    account_blocks,
    read_buffer,
    source_blocks,
)
from .harness import Cli, Durations, Finished, Running
from .streams import delivered_at, iso

FAR_FUTURE = "2100-01-01T00:00:00.000Z"
WRITES = {"ingest": "write to the buffer", "settle": "destination commit"}
Probe = Callable[[], Any]


# A settle killed -9 keeps the others out until its lease expires, of the --now clock (the
# expiry is --now + this + the time it ran): short, so that a later chunk is not kept out.
LEASE_SECONDS = 2.0


class CampaignError(RuntimeError):
    """The campaign itself could not go on (a step failed that no fault explains)."""


@dataclass(slots=True)
class Tally:
    """One fault of the report: how often it was injected and what each injection led to."""

    fault: str
    scenario: str
    how: str
    injected: int = 0
    missed: int = 0  # tries that did not land (the process had ended first)
    outcomes: Counter[str] = field(default_factory=Counter)
    details: dict[str, Any] = field(default_factory=dict)
    records_lost: int | None = None
    documents_wrong: int | None = None
    blocks_skipped: int | None = None

    def outcome(self) -> str:
        return "; ".join(f"{n}x {what}" for what, n in self.outcomes.most_common()) or "-"

    def as_json(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "scenario": self.scenario,
            "how": self.how,
            "injected": self.injected,
            "missed": self.missed,
            "outcomes": dict(self.outcomes.most_common()),
            "outcome": self.outcome(),
            "records_lost": self.records_lost,
            "documents_wrong": self.documents_wrong,
            "blocks_skipped": self.blocks_skipped,
            "details": self.details,
        }


class Tallies:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Tally] = {}
        self._lock = threading.Lock()

    def get(self, fault: str, scenario: str, how: str) -> Tally:
        with self._lock:
            key = (fault, scenario)
            if key not in self._items:
                self._items[key] = Tally(fault=fault, scenario=scenario, how=how)
            return self._items[key]

    def of(self, scenario: str) -> list[Tally]:
        with self._lock:
            return [t for t in self._items.values() if t.scenario == scenario]

    def all(self) -> list[Tally]:
        with self._lock:
            return list(self._items.values())


@dataclass(slots=True)
class Verification:
    equal: bool
    documents: int
    wrong: int
    raw: dict[str, Any]


_STOPPED_AFTER = re.compile(r"stopped after (\d+) records")


class Pipeline:
    def __init__(
        self,
        *,
        scenario: str,
        cli: Cli,
        sim: Path,
        buffer_url: str,
        destination_url: str,
        window: float,
        group_size: int,
        rng: Random,
        tallies: Tallies,
        watch: Mapping[str, Probe] | None = None,
        settle_env: Mapping[str, str] | None = None,
    ) -> None:
        self.scenario = scenario
        self.cli = cli
        self.sim = sim
        self.buffer_url = buffer_url
        self.destination_url = destination_url
        self.window = window
        self.group_size = group_size
        self.rng = rng
        self.tallies = tallies
        self.watch = dict(watch or {})
        self.settle_env = dict(settle_env or {})
        self.durations = Durations()
        self.events = sorted((sim / "events").glob("*.json"))
        self.delivered: list[Path] = []
        self.last_settle: dict[str, Any] | None = None
        self.buffer_seen: BufferInventory | None = None

    # --- commands ---------------------------------------------------------------------------------

    def ingest_args(self, files: Sequence[Path]) -> list[str]:
        return ["ingest", "--buffer", self.buffer_url, "--json", *map(str, files)]

    def settle_args(self, now: str) -> list[str]:
        return [
            "settle",
            "--buffer",
            self.buffer_url,
            "--destination",
            self.destination_url,
            "--window",
            f"{self.window:g}",
            "--now",
            now,
            "--group-size",
            str(self.group_size),
            # A settle killed -9 keeps the others out until its lease expires (of the --now
            # clock): as short as a settle of this campaign lasts, so that the next chunk's
            # settle (seconds later on that clock) is not kept out by a dead one.
            "--lease-seconds",
            f"{LEASE_SECONDS:g}",
            "--json",
        ]

    def run_clean(self, args: list[str], key: str, ok: tuple[int, ...] = (0,)) -> Finished:
        """Run until it succeeds; a transient failure (exit 3) is run again, as a Lambda retry or
        the next scheduled cycle would."""
        last: Finished | None = None
        for _ in range(8):
            last = self.cli.run(args, env=self.settle_env if key == "settle" else None)
            if last.code in ok:
                self.durations.add(key, last.seconds)
                return last
            if last.code != 3:
                break
        assert last is not None
        raise CampaignError(f"[{self.scenario}] {last.describe()}")

    def ingest(self, files: Sequence[Path], ok: tuple[int, ...] = (0,)) -> dict[str, Any]:
        done = self.run_clean(self.ingest_args(files), "ingest", ok)
        self.delivered.extend(files)
        result: dict[str, Any] = done.json()
        return result

    def settle(self, now: str, ok: tuple[int, ...] = (0,)) -> dict[str, Any]:
        done = self.run_clean(self.settle_args(now), "settle", ok)
        self.last_settle = done.json()
        return self.last_settle

    def start(self, key: str, args: list[str], env: Mapping[str, str] | None = None) -> Running:
        extra = {**(self.settle_env if key == "settle" else {}), **(env or {})}
        return self.cli.start(args, env=extra)

    # --- faults -----------------------------------------------------------------------------------

    def kill9(self, key: str, args: list[str], tally: Tally) -> bool:
        """Start the process and ``kill -9`` it at a random instant; True when the kill landed.

        Half of the instants are drawn over the whole expected run (``Durations``); with a
        ``watch`` for the command (a cheap signal of its first write: the files it writes), the
        other half fall in its work: within 50 ms after that signal first changes. The report
        says which, and whether the process had written before it died."""
        watch = self.watch.get(key)
        before = watch() if watch else None
        run = self.start(key, args)
        if watch is not None and self.rng.random() < 0.5:
            mode = "in its work"
            while run.alive() and watch() == before:
                time.sleep(0.005)
            at = run.elapsed() + self.rng.uniform(0.0, 0.05)
        else:
            mode = "anywhere in its run"
            at = self.durations.instant(key, self.rng)
        if not run.wait_until(at) or not run.kill9():
            tally.missed += 1
            run.wait()
            return False
        run.wait()
        tally.injected += 1
        tally.details.setdefault("instants_s", []).append(round(at, 3))
        modes = tally.details.setdefault("instant_drawn", {})
        modes[mode] = modes.get(mode, 0) + 1
        if watch is not None:
            wrote = watch() != before
            tally.outcomes[
                f"killed after its first {WRITES[key]}; the rerun completed"
                if wrote
                else f"killed before its first {WRITES[key]}; the rerun completed"
            ] += 1
        else:
            tally.outcomes["killed; the rerun completed"] += 1
        return True

    def during(
        self,
        key: str,
        args: list[str],
        tally: Tally,
        act: Callable[[Running], Callable[[], None] | None],
        *,
        lo: float = 0.3,
        hi: float = 0.9,
    ) -> Finished | None:
        """Start the process and ``act`` on it at a random instant inside its expected run, or,
        with a ``watch`` for the command, within 50 ms after its first write (in the middle of
        its batch or cycle). ``act`` returns an undo, run once the process ended. None when the
        process ended first."""
        watch = self.watch.get(key)
        before = watch() if watch else None
        run = self.start(key, args)
        if watch is not None:
            while run.alive() and watch() == before:
                time.sleep(0.005)
            at = run.elapsed() + self.rng.uniform(0.0, 0.05)
        else:
            at = self.rng.uniform(lo, hi) * self.durations.estimate(key)
        if not run.wait_until(at):
            tally.missed += 1
            run.wait()
            return None
        undo = act(run)
        try:
            done = run.wait()
        finally:
            if undo is not None:
                undo()
        tally.injected += 1
        return done

    @staticmethod
    def ingest_outcome(done: Finished) -> str:
        if done.code == 0:
            return "the ingest rode it out (exit 0)"
        m = _STOPPED_AFTER.search(done.stderr)
        where = f"after {m.group(1)} records" if m else "at its start"
        if done.code == 3:
            mid = "mid-batch " if m and m.group(1) != "0" else ""
            return f"ingest exit 3 {mid}({where}); the rerun stored the rest"
        return f"ingest exit {done.code}: {done.stderr.strip().splitlines()[-1:]}"

    @staticmethod
    def settle_outcome(done: Finished, progressed: bool) -> str:
        if done.code == 0:
            return "the cycle rode it out (exit 0)"
        if done.code == 3:
            mid = "mid-cycle, after a destination commit" if progressed else "before a commit"
            return f"settle exit 3 {mid}; the next cycle went on"
        return f"settle exit {done.code}: {done.stderr.strip().splitlines()[-1:]}"

    # --- the end ----------------------------------------------------------------------------------

    def chunks(self, size: int) -> list[list[Path]]:
        return [self.events[i : i + size] for i in range(0, len(self.events), size)]

    @staticmethod
    def now_of(files: Sequence[Path]) -> str:
        return iso(delivered_at(files[-1]))

    def drain(self) -> dict[str, Any]:
        """Settle as of the far future: everything buffered is released, in order."""
        return self.settle(FAR_FUTURE)

    def inventory(self, extra: Sequence[Path] = ()) -> StreamInventory:
        stream = StreamInventory()
        stream.add_files([*self.delivered, *extra])
        return stream

    def account(self, stream: StreamInventory) -> Accounting:
        self.buffer_seen = read_buffer(self.cli, self.buffer_url, self.cli.env)
        return account(stream, self.buffer_seen)

    def account_blocks(self, stream: StreamInventory) -> BlockAccount:
        """The source's blocks against what was replayed in order (the buffer as ``account``
        last read it)."""
        buf = self.buffer_seen or read_buffer(self.cli, self.buffer_url, self.cli.env)
        streamed = [r for r, kind in stream.kinds.items() if kind == "block"]
        return account_blocks(source_blocks(self.sim / "source.db"), buf, streamed)

    def verify(self, env: Mapping[str, str] | None = None) -> Verification:
        done = self.cli.run(
            ["verify", "--destination", self.destination_url, "--source", str(self.sim), "--json"],
            env=env,
        )
        if done.code not in (0, 1):
            raise CampaignError(f"[{self.scenario}] {done.describe()}")
        raw = done.json()
        wrong = int(raw["missing"]) + int(raw["unexpected"]) + int(raw.get("different", 0))
        return Verification(
            equal=bool(raw["equal"]), documents=int(raw["documents"]), wrong=wrong, raw=raw
        )

    def status(self) -> dict[str, Any]:
        done = self.cli.run(
            [
                "status",
                "--buffer",
                self.buffer_url,
                "--destination",
                self.destination_url,
                "--json",
            ],
            env=self.settle_env,
        )
        if done.code not in (0, 1):
            raise CampaignError(f"[{self.scenario}] {done.describe()}")
        result: dict[str, Any] = done.json()
        return result


def max_delay_seconds(events: Sequence[Path]) -> float:
    """The largest (delivery − commit) of any block summary's first delivery: a settle window
    above it keeps every block from being late (what ``status`` recommends, measured here)."""
    from ingest.decode import decode_file
    from journal.records import BlockSummary

    first: dict[str, float] = {}
    for path in events:
        at = delivered_at(path)
        for item in decode_file(path):
            rec = getattr(item, "record", None)
            if isinstance(rec, BlockSummary) and rec.block_id not in first:
                first[rec.block_id] = (at - rec.block_timestamp) / timedelta(seconds=1)
    return max(first.values(), default=0.0)


def since(start: datetime, seconds: float) -> str:
    return iso(start + timedelta(seconds=seconds))
