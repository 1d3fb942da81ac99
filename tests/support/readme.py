"""The README's first commands (its first code block), as the tests that run them read them."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def first_commands(readme: Path = README) -> dict[str, str]:
    """{'up': './run up', ...}: each line of the first code block, comment removed, keyed by
    its last word."""
    text = readme.read_text()
    start = text.index("```sh\n") + len("```sh\n")
    block = text[start:text.index("```", start)]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    return {command.split()[-1]: command for command in commands if command}
