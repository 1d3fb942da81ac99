"""A lying fetch server, for tests: run by sshd as another key's forced command.

    python hostile_serve.py MODE_FILE MAILDIR REQUEST_LOG

It greets like fetch-serve and lists the real Maildir, then lies as MODE_FILE says (garbage,
dotdot-list, dotdot-data, other-name, size, hash, short, stall), or writes terminal escapes
to stderr and exits (escapes: before the greeting, escapes-late: on LIST). `clash LOCAL`
gives the first message's name to a file of the owner in the LOCAL Maildir just before
sending it, as a case-insensitive disk would (`new/abc` is the owner's `new/ABC`). Every
request it gets is appended to REQUEST_LOG, and a DEL really deletes: a test can check
both that no delete was asked for and that none happened.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import BinaryIO

# a window title, an overwriting CR, a cleared screen, a C1 CSI, a bidi override and
# isolates, a tab, BEL: what a hostile server would send to the owner's terminal
ESCAPES = ("\x1b]0;owned\x07fetched 0 messages\rall good \x1b[2J\x9b31m\u202egnp.exe"
           "\u2066x\u2069\tend\x07\n").encode()
OWNERS_MESSAGE = b"Subject: mine\r\n\r\nthe owner's own message\r\n"


def main() -> None:
    mode, *extra = Path(sys.argv[1]).read_text().split()
    maildir, log = Path(sys.argv[2]), Path(sys.argv[3])
    out = sys.stdout.buffer
    if mode == "escapes":
        _escape_and_exit()
    out.write(b"ONIONPOST-FETCH 1\n")
    out.flush()
    names = sorted(f"new/{name}" for name in os.listdir(maildir / "new"))
    for line in sys.stdin.buffer:
        with log.open("ab") as handle:
            handle.write(line)
        verb, *args = line.decode().split()
        if verb == "LIST" and mode == "escapes-late":
            _escape_and_exit()
        if verb == "LIST":
            if mode == "garbage":
                out.write(b"\x00\xffgarbage\xfe\n")
            listed = [*names, "new/../../escaped"] if mode == "dotdot-list" else names
            for name in listed:
                out.write(f"{name} {_size(maildir, name)}\n".encode())
            out.write(f"END {len(listed)} 0\n".encode())
        elif verb == "GET":
            if mode == "clash" and args[0] == names[0]:
                (Path(extra[0]) / args[0]).write_bytes(OWNERS_MESSAGE)
            _send(out, maildir, args[0], mode, names)
        elif verb == "DEL":
            (maildir / args[0]).unlink()
            out.write(f"DELETED {args[0]}\n".encode())
        elif verb == "QUIT":
            out.write(b"BYE\n")
        out.flush()
        if verb == "QUIT":
            return


def _escape_and_exit() -> None:
    sys.stderr.buffer.write(ESCAPES)
    sys.stderr.flush()
    sys.exit(3)


def _size(maildir: Path, name: str) -> int:
    path = maildir / name
    return path.stat().st_size if path.exists() else 10


def _send(out: BinaryIO, maildir: Path, name: str, mode: str, names: list[str]) -> None:
    body = (maildir / name).read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    sent_name = {"dotdot-data": "new/../../escaped",
                 "other-name": names[-1] if names[-1] != name else names[0]}.get(mode, name)
    size = len(body) + 7 if mode == "size" else len(body)
    if mode == "hash":
        digest = hashlib.sha256(body + b"x").hexdigest()
    if mode == "stall":  # half a message, then silence until the client gives up
        out.write(f"DATA {name} {len(body)}\n".encode() + body[:len(body) // 2])
        out.flush()
        sys.stdin.buffer.read()
        sys.exit(0)
    if mode == "short":
        body = body[: len(body) // 2]
        size = len(body) * 2
    out.write(f"DATA {sent_name} {size}\n".encode() + body)
    out.write(digest.encode() + b"\n")


if __name__ == "__main__":
    main()
