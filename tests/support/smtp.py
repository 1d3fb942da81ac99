"""SMTP clients for tests: a byte-level one (sends exactly what the test gives it), smtplib
with tor's PROXY v1 header, and swaks."""

from __future__ import annotations

import smtplib
import socket
import subprocess
from dataclasses import dataclass

TOR_CIRCUIT_PREFIX = "fc00:dead:beef:4dad::"


def circuit_address(circuit_id: int) -> str:
    """The source address tor writes in the PROXY header for a circuit id."""
    return f"{TOR_CIRCUIT_PREFIX}{circuit_id >> 16:x}:{circuit_id & 0xFFFF:x}"


def proxy_v1(source: str, source_port: int = 24) -> bytes:
    """The header tor sends with `HiddenServiceExportCircuitID haproxy`."""
    return f"PROXY TCP6 {source} ::1 {source_port} 25\r\n".encode()


@dataclass(frozen=True)
class Reply:
    code: int
    text: str  # all lines of the reply, without codes, joined by "\n"

    @property
    def enhanced(self) -> str:
        return self.text.split(" ", 1)[0]

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class RawSMTP:
    """One SMTP connection driven line by line; replies are parsed, nothing is interpreted."""

    def __init__(self, port: int, proxy_line: bytes | None = None, timeout: float = 15) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = b""
        if proxy_line is not None:
            self.sock.sendall(proxy_line)

    def __enter__(self) -> RawSMTP:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> Reply | None:
        """The next reply, or None when the server closed the connection first."""
        lines: list[bytes] = []
        while True:
            line = self._line()
            if line is None:
                return None
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                break
        code = int(lines[0][:3])
        text = "\n".join(line[4:].decode("utf-8", "replace") for line in lines)
        return Reply(code, text)

    def command(self, line: str | bytes) -> Reply | None:
        data = line.encode() if isinstance(line, str) else line
        self.send(data + b"\r\n")
        return self.reply()

    def greeting(self) -> Reply | None:
        return self.reply()

    def closed(self, timeout: float = 15) -> bool:
        """Wait for the server to close the connection (discarding anything it sends)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            pass
        return True

    def _line(self) -> bytes | None:
        while b"\r\n" not in self._buffer:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line


def session_until_data(client: RawSMTP, recipient: str, sender: str = "a@example.org") -> None:
    """EHLO, MAIL, RCPT, DATA, asserting each step is accepted."""
    for line, expected in ((b"EHLO client", 250), (f"MAIL FROM:<{sender}>".encode(), 250),
                           (f"RCPT TO:<{recipient}>".encode(), 250), (b"DATA", 354)):
        reply = client.command(line)
        assert reply is not None and reply.code == expected, (line, reply)


class ProxySMTP(smtplib.SMTP):
    """smtplib that first sends tor's PROXY v1 header for a given circuit address."""

    def __init__(self, host: str, port: int, source: str, timeout: float = 15) -> None:
        self.proxy_source = source
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]  # smtplib's private hook, not in typeshed
        sock.sendall(proxy_v1(self.proxy_source))
        return sock


def swaks(port: int, to: str, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run swaks against 127.0.0.1:port; its transcript is in stdout."""
    return subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(port), "--to", to,
         "--from", "sender@example.org", "--helo", "client.example", *extra],
        capture_output=True, text=True, timeout=timeout, check=False)
