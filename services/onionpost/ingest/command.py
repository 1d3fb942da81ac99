"""`onionpost ingest`: run the SMTP service with the configured settings."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from onionpost.ingest import controller
from onionpost.service_settings import load_settings as load_settings  # cli.run's reader

if TYPE_CHECKING:
    from onionpost.settings import Settings


def main(argv: list[str], settings: Settings) -> int:
    argparse.ArgumentParser(
        prog="onionpost ingest",
        description="Receive mail for our onion domain into the Maildir. "
                    "Configured through ONIONPOST_* variables (see .env.example).",
    ).parse_args(argv)
    return controller.run(settings)
