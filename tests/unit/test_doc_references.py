"""Every document the repository mentions (`something.md`, in docs, code, tests and config)
is in the repository: no reference to notes that only some contributors have."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = ["README.md", ".env.example", "compose.yaml", "Makefile", "docs/*.md",
           "services/**/*.py", "tests/**/*.py", "bench/*.py"]
MENTION = re.compile(r"(?<![\w/.:-])((?:\.\./)*[\w./-]*\w\.md)\b")


def mentions(path: Path) -> set[str]:
    return set(MENTION.findall(path.read_text(errors="replace")))


def resolves(name: str, mentioned_in: Path) -> bool:
    return (mentioned_in.parent / name).is_file() or (REPO / name).is_file()


def test_every_mentioned_document_is_in_the_repository() -> None:
    files = [path for pattern in SOURCES for path in REPO.glob(pattern)
             if path != Path(__file__).resolve()]  # this file names made-up ones
    assert REPO / "docs" / "architecture.md" in files
    dangling = sorted(f"{path.relative_to(REPO)}: {name}" for path in files
                      for name in mentions(path) if not resolves(name, path))
    assert dangling == []


def test_a_dangling_mention_is_found(tmp_path: Path) -> None:
    note = tmp_path / "note.py"
    note.write_text('"""See DESIGN.md and ../shared/TOR-TESTNET.md, not docs/x.md."""\n')
    assert mentions(note) == {"DESIGN.md", "../shared/TOR-TESTNET.md", "docs/x.md"}
    assert not resolves("DESIGN.md", note)
