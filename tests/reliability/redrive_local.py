"""``qldb-settle redrive`` against the campaign's file-backed queue and stream.

``python -m tests.reliability.redrive_local AWS_DIR REDRIVE_ARGS...``: the real command (its
``run``, argument parsing, exit codes and output) with boto3's ``sqs`` and ``kinesis`` clients
replaced by ``tests.reliability.aws_fakes`` on ``AWS_DIR`` (the on-failure queue and stream the
scenario's event source mapping wrote)."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from qldb_settle.cli import main as cli_main

    from .aws_fakes import patch_boto3

    patch_boto3(Path(argv[0]))
    return cli_main(["redrive", *argv[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
