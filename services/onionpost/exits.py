"""Exit codes of every command (sysexits, as sendmail callers expect) and the errors they raise."""

from __future__ import annotations

import argparse
import os

EX_OK = os.EX_OK
EX_USAGE = os.EX_USAGE  # 64: bad arguments
EX_DATAERR = os.EX_DATAERR  # 65: bad input data (a message without a recipient)
EX_NOINPUT = os.EX_NOINPUT  # 66
EX_NOUSER = os.EX_NOUSER  # 67
EX_UNAVAILABLE = os.EX_UNAVAILABLE  # 69: a service we need is not there
EX_SOFTWARE = os.EX_SOFTWARE  # 70
EX_CANTCREAT = os.EX_CANTCREAT  # 73: would overwrite, or cannot create, a file
EX_IOERR = os.EX_IOERR  # 74
EX_TEMPFAIL = os.EX_TEMPFAIL  # 75: try again later (sendmail callers queue on it)
EX_PROTOCOL = os.EX_PROTOCOL  # 76
EX_NOPERM = os.EX_NOPERM  # 77
EX_CONFIG = os.EX_CONFIG  # 78: bad configuration


class CommandError(Exception):
    """A command's failure the user must read: `cli.run` prints the message and exits with code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ConfigError(Exception):
    """A configuration problem, said in one line: `cli.run` exits with EX_CONFIG."""


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    """The parsed arguments, or the exit code when argparse ends the command (it printed
    why): EX_OK after --help, EX_USAGE (64, not argparse's 2) for bad arguments."""
    try:
        return parser.parse_args(argv)
    except SystemExit as done:
        return EX_USAGE if done.code else EX_OK
