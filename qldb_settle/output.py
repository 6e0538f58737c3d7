"""Shared command-line plumbing: flags that name their environment variable, JSON output."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from compose.settings import DEFAULT, ENV_NAME, Settings

# The exit codes of every command (DESIGN.md): done; done, but something needs an operator; bad
# usage or unreadable input; a transient failure (nothing lost: run it again).
EXIT_OK, EXIT_ATTENTION, EXIT_USAGE, EXIT_TRANSIENT = 0, 1, 2, 3


def iso_ms(value: datetime | None) -> str | None:
    """ISO 8601 UTC with milliseconds (DESIGN.md), e.g. ``2020-07-03T20:36:44.181Z``."""
    if value is None:
        return None
    v = value.astimezone(UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"


def duration(ms: float | None) -> str:
    """A duration in milliseconds in human units (``2 min 5 s``, ``3 h 12 min``, ``5.0 years``):
    the one formatter of every duration the command line prints; JSON keeps milliseconds."""
    from settler.cycle_report import human_duration

    return human_duration(ms)


def durations(d: Mapping[str, float | None]) -> str:
    """A ``{"p50", "p99", "max"}`` distribution (ms) as ``p50 2.8 s, p99 8.0 s, max 8.0 s``."""
    return ", ".join(f"{k} {duration(d[k])}" for k in ("p50", "p99", "max"))


def repeat_flags(args: argparse.Namespace) -> str:
    """The ``--buffer``/``--destination`` flags this command was given, for the commands it
    suggests (settings from the environment apply to those as they did here)."""
    flags = []
    for name in ("buffer", "destination"):
        value = getattr(args, name, None)
        if value:
            flags.append(f"--{name} {shlex.quote(value)}")
    return " ".join(flags)


_COMMAND = re.compile(r"`qldb-settle (resolve|settle)\b([^`]*)`")


def suggested_commands(reason: str, flags: str = "") -> tuple[str, list[str]]:
    """A halt reason for people: its text before the commands it names (``; run `...```), and
    those ``qldb-settle resolve``/``settle`` commands in order, with ``flags``
    (``repeat_flags``) added where they have none; ``(reason, [])`` when it names none."""
    out = []
    for verb, rest in _COMMAND.findall(reason):
        opt = f" {flags}" if flags and "--buffer" not in rest else ""
        out.append(f"qldb-settle {verb}{opt}{rest}")
    if not out:
        return reason, []
    return reason.split("; run `", 1)[0], out


def parse_time(text: str) -> datetime:
    """An ISO 8601 instant (``Z`` or an offset; a bare date or time without zone is UTC)."""
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    value = datetime.fromisoformat(t)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def add_buffer(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--buffer",
        metavar="URL",
        help=(
            "settling buffer: sqlite:PATH or opensearch:http(s)://HOST[:PORT] "
            f"(env {ENV_NAME['buffer']}, default {DEFAULT['buffer']})"
        ),
    )


def add_destination(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--destination",
        metavar="URL",
        help=(
            "replica: embedded:PATH, qldb:LEDGER_NAME or postgresql://USER@HOST[:PORT]/DBNAME "
            "(also postgres://, with any libpq URL parameter; the password from the URL, "
            "PGPASSWORD or ~/.pgpass) "
            f"(env {ENV_NAME['destination']}, default {DEFAULT['destination']})"
        ),
    )
    p.add_argument(
        "--pg-schema",
        metavar="NAME",
        help="PostgreSQL schema of a postgresql:// destination "
        f"(env {ENV_NAME['pg_schema']}, default {DEFAULT['pg_schema']})",
    )


def add_common_settings(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--index-prefix",
        metavar="P",
        help=f"OpenSearch index prefix (env {ENV_NAME['index_prefix']}, "
        f"default {DEFAULT['index_prefix']})",
    )
    p.add_argument(
        "--qldb-endpoint",
        metavar="URL",
        help=f"QLDB session endpoint for qldb: destinations (env {ENV_NAME['qldb_endpoint']}, "
        "default the AWS endpoint of AWS_REGION)",
    )
    p.add_argument(
        "--opensearch-auth",
        choices=("auto", "sigv4", "none"),
        default="auto",
        help="OpenSearch authentication: SigV4 for *.amazonaws.com hosts (auto), or forced",
    )


def add_window(p: argparse.ArgumentParser, *, early_release: bool = True) -> None:
    """``--window`` and ``--early-release``, the two release settings of a settle cycle (only
    ``--window`` with ``early_release=False``: a command that reports on the window)."""
    p.add_argument(
        "--window",
        type=float,
        metavar="S",
        help=f"settle window in seconds (env {ENV_NAME['window_seconds']}, "
        f"default {DEFAULT['window_seconds']})",
    )
    if not early_release:
        return
    p.add_argument(
        "--early-release",
        action="store_true",
        help="release the block the chain proves to be next before its window "
        f"(env {ENV_NAME['early_release']}, default off)",
    )


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by whichever flags this command has."""
    return Settings.from_env(
        buffer=getattr(args, "buffer", None),
        destination=getattr(args, "destination", None),
        window_seconds=getattr(args, "window", None),
        early_release=True if getattr(args, "early_release", False) else None,
        index_prefix=getattr(args, "index_prefix", None),
        qldb_endpoint=getattr(args, "qldb_endpoint", None),
        retention_days=getattr(args, "retention_days", None),
        pg_schema=getattr(args, "pg_schema", None),
    )


def print_json(obj: Mapping[str, Any]) -> None:
    json.dump(obj, sys.stdout, indent=None, sort_keys=False, default=_default)
    sys.stdout.write("\n")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_ms(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON-able: {type(value).__name__}")
