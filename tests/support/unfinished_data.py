"""Sessions that send a big DATA and hold it unfinished, and the memory a process uses meanwhile
(for the ingest memory tests and bench/hostile_memory.py)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.net import wait_for

CHUNK_LINE = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.:-\r\n"


def memory_kb(pid: int, field_name: str = "VmRSS") -> int:
    """A process's resident memory (VmRSS) or its peak (VmHWM), in KiB (/proc says kB), from
    /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise LookupError(field_name)


def unread_bytes(port: int) -> int:
    """Bytes in the receive queues of the sockets accepted on 127.0.0.1:port (received by
    the kernel, not read by the server yet)."""
    total = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, queues = fields[1], fields[4]
        if int(local.split(":")[1], 16) == port:
            total += int(queues.split(":")[1], 16)
    return total


def reply(sock: socket.socket) -> bytes:
    """One whole (maybe multi-line) SMTP reply."""
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
        last = data.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
        if data.endswith(b"\r\n") and len(last) >= 4 and last[3:4] == b" ":
            return data


def command(sock: socket.socket, line: bytes) -> bytes:
    sock.sendall(line + b"\r\n")
    return reply(sock)


@dataclass
class UnfinishedData:
    """`sessions` SMTP sessions, each in DATA with `size` bytes of content sent and no end."""

    port: int
    rcpt: str
    sessions: int
    size: int
    socks: list[socket.socket] = field(default_factory=list)

    def open(self) -> UnfinishedData:
        for number in range(self.sessions):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
            self.socks.append(sock)
            assert reply(sock).startswith(b"220"), f"session {number} not greeted"
            assert command(sock, b"EHLO attacker.example").startswith(b"250")
            assert command(sock, b"MAIL FROM:<a@attacker.example>").startswith(b"250")
            assert command(sock, f"RCPT TO:<{self.rcpt}>".encode()).startswith(b"250")
            assert command(sock, b"DATA").startswith(b"354")
        return self

    def send(self) -> None:
        """Every session's content, in parallel, then wait until the server has read it
        all (the kernel holds nothing unread for it)."""
        block = CHUNK_LINE * (65_536 // len(CHUNK_LINE))
        body = b"Subject: big\r\n\r\n" + block * (self.size // len(block))
        threads = [threading.Thread(target=sock.sendall, args=(body,)) for sock in self.socks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_for(lambda: unread_bytes(self.port) == 0, timeout=120,
                 what="the server to read every session's DATA")

    def finish(self) -> list[bytes]:
        """End every message at once; the replies."""
        for sock in self.socks:
            sock.sendall(b".\r\n")
        return [reply(sock) for sock in self.socks]

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.socks.clear()

