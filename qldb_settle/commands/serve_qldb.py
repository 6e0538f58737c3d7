"""``qldb-settle serve-qldb --ledger embedded:PATH [--host 127.0.0.1] [--port P]``: a local
endpoint of the QLDB Session API over an embedded ledger file, so that pyqldb programs (the
``qldb:`` destination among them) run against it, and of the ``qldb`` control plane on the same
port (GetDigest, GetBlock, GetRevision with proofs; Describe/List/Create/Update/DeleteLedger).
Prints the URL it listens on, then serves until interrupted."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from runtime.errors import ConfigError

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve-qldb",
        help="serve an embedded ledger over the QLDB Session API (for pyqldb programs)",
        description=(
            "Serve an embedded ledger file over the QLDB Session API (SendCommand, JSON 1.0), so "
            "that any pyqldb program runs against it: QldbDriver(LEDGER, endpoint_url=URL, "
            "region_name=..., aws_access_key_id=..., aws_secret_access_key=...). Any credentials "
            "are accepted. The qldb control plane (GetDigest, GetBlock, GetRevision with proofs, "
            "Describe/List/Create/Update/DeleteLedger) is served on the same URL: set "
            "AWS_ENDPOINT_URL_QLDB_SESSION and AWS_ENDPOINT_URL_QLDB to it. Prints the URL on the "
            "first line of stdout."
        ),
    )
    p.add_argument(
        "--ledger",
        required=True,
        metavar="embedded:PATH",
        help="the ledger file; or a folder (existing, or PATH ending in /) where each ledger "
        "name N is the file N.db, created on first use",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)"
    )
    p.add_argument(
        "--port", type=int, default=0, help="port to listen on (default 0: any free port)"
    )
    p.add_argument(
        "--ledger-name",
        metavar="NAME",
        help="answer only to this ledger name (default: any name; the file is the ledger)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    scheme, _, path = str(args.ledger).partition(":")
    if scheme != "embedded" or not path:
        raise ConfigError(f"--ledger {args.ledger!r} is not embedded:PATH")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port number")

    from ledger import EmbeddedLedger
    from ledger.control_plane import QldbControlPlane
    from ledger.ledger_catalog import LedgerDirectory, SingleLedger
    from ledger.qldb_http import SessionServer
    from ledger.session_server import QldbSessionService

    def open_ledger(file: str, name: str) -> EmbeddedLedger:
        return EmbeddedLedger(file, ledger_name=name, enforce_limits=True)

    ledgers: SingleLedger | LedgerDirectory
    if path.endswith(os.sep) or os.path.isdir(path):
        os.makedirs(path, exist_ok=True)
        ledgers = LedgerDirectory(path, open_ledger)
    else:
        ledgers = SingleLedger(open_ledger(path, args.ledger_name or "embedded"), args.ledger_name)
    service = QldbSessionService(ledgers)
    try:
        server = SessionServer(service, args.host, args.port, QldbControlPlane(ledgers))
    except OSError as exc:
        _close(ledgers)
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc}") from None

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return, so it must run off the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = signal.signal(signal.SIGTERM, stop)
    print(server.url, flush=True)
    logger.info("serving %s over the QLDB Session API at %s", path, server.url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        _close(ledgers)
        print(f"serve-qldb: stopped ({service.counters['commits']} commits)", file=sys.stderr)
    return 0


def _close(ledgers: Any) -> None:
    if hasattr(ledgers, "ledger"):
        ledgers.ledger.close()
    ledgers.close()
