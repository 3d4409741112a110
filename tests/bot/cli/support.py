"""What the CLI tests share: running ``glider-relay`` in-process and reading its output."""

from __future__ import annotations

import pytest

from bot.cli.main import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``glider-relay ARGV...``: its exit status, stdout and stderr."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err
