"""Issue 19 end to end through the command line: a settle window (2 s) below the stream's delays
(up to 8 s) makes DDL blocks late, and the block that needs their table fails replay and halts
the settler. The halt reason and ``status`` name the late blocks and the commands; running
exactly those commands recovers the replica, which ``verify`` then finds equal to the source.

``demo`` plays the simulated stream in arrival order with a settle cycle every simulated second
(``simulate`` alone writes the events, and ingesting them all before settling would leave
nothing late). Seed 6 of 60 transactions is deterministic (the simulator's own clock): its
CREATE TABLE Person block arrives after the replica started past it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from qldb_settle.cli import main

DEMO = [
    "demo", "--transactions", "60", "--seed", "6", "--window", "2", "--max-delay-ms", "8000",
    "--schedule", "1",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("QLDB_SETTLE_BUFFER", "QLDB_SETTLE_DESTINATION", "QLDB_SETTLE_WINDOW_SECONDS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, Any]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_window_below_the_delay_halts_on_a_late_ddl_block_and_the_named_commands_recover(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "demo"
    stores = ["--buffer", f"sqlite:{work / 'buffer.db'}",
              "--destination", f"embedded:{work / 'replica.db'}"]  # fmt: skip
    code, demo = _json(capsys, [*DEMO, "--workdir", str(work)])
    assert code == 1 and not demo["verified"] and demo["halted"] and demo["late"] >= 1
    reason = demo["halt_reason"]
    assert "no active table named 'Person'" in reason
    assert "late block" in reason and "--apply-late" in reason and "--retry" in reason

    # status says the same, with the commands in full, and warns about the window.
    code, status = _json(capsys, ["status", *stores, "--window", "2"])
    assert code == 1
    (recovery,) = status["recovery"]
    assert recovery["block"] in reason and all(ref in reason for ref in recovery["late"])
    (warning,) = status["warnings"]
    assert "settle window (2 s) is below the p99 ingest delay" in warning
    assert status["recommended_window_seconds"] > 2
    commands = recovery["commands"]
    assert [c.split()[1] for c in commands] == ["resolve"] * (len(commands) - 1) + ["settle"]
    assert sum("--apply-late" in c for c in commands) == len(recovery["late"])

    # Run them as printed (a reason instead of TEXT), then verify against the source.
    for command in commands:
        argv = shlex.split(command.replace("--reason TEXT", "--reason 'late DDL (test)'"))[1:]
        assert argv[0] in ("resolve", "settle")
        assert main(argv) == 0, command
    capsys.readouterr()
    code, after = _json(capsys, ["status", *stores])
    assert code == 0, after["attention"]
    assert after["blocks"]["quarantined"] == after["blocks"]["late"] == 0
    assert after["blocks"]["pending"] == 0 and after["recovery"] == []
    code, verified = _json(
        capsys, ["verify", "--destination", stores[3], "--source", str(work / "simulation")]
    )
    assert code == 0 and verified["equal"], verified
