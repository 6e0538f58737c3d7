"""``qldb-settle``: the command line (a stable contract, DESIGN.md "Command line").

Each subcommand lives in ``qldb_settle/commands/<name>.py`` with ``register(subparsers)``; heavy
imports happen inside the command, so ``--help`` and the ingest path stay light.

Exit codes: 0 done, nothing needs attention; 1 done, but something needs an operator; 2 bad
usage or unreadable input; 3 transient failure (nothing lost, run it again).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from journal.errors import InputError, SettleError
from qldb_settle.output import EXIT_ATTENTION, EXIT_TRANSIENT, EXIT_USAGE
from runtime.errors import ConfigError, TransientError

# The order subcommands appear in --help (DESIGN.md's order); unknown ones follow.
ORDER = (
    "demo", "simulate", "ingest", "settle", "status", "blocks", "rejected", "resolve",
    "export", "query", "verify", "serve_qldb", "redrive",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qldb-settle",
        description=(
            "Keep a replica of an Amazon QLDB ledger exact from its journal stream, although the "
            "stream arrives duplicated and out of order: ingest into a settling buffer, release "
            "settled blocks in commit order, replay each exactly once, verify."
        ),
        epilog=(
            "Exit codes: 0 done; 1 done but something needs an operator; 2 bad usage or "
            "unreadable input; 3 transient failure (nothing lost, run it again)."
        ),
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from qldb_settle import commands

    names = [m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    for name in names:
        module = importlib.import_module(f"qldb_settle.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.run(args)
    except (InputError, ConfigError) as exc:
        print(f"qldb-settle {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TransientError as exc:
        print(
            f"qldb-settle {args.command}: {exc} (nothing was lost; run it again)", file=sys.stderr
        )
        return EXIT_TRANSIENT
    except SettleError as exc:
        print(f"qldb-settle {args.command}: {exc}", file=sys.stderr)
        return EXIT_ATTENTION
    except KeyboardInterrupt:
        print(f"qldb-settle {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as Unix tools do.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the exit flush quiet
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
