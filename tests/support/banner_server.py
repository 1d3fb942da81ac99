"""A TCP server on 127.0.0.1 that greets every connection with one fixed line (an onion
service's target in the e2e tests)."""

from __future__ import annotations

import socket
import threading


class BannerServer:
    """Greets each connection with `banner`; with `await_reply`, waits for the client's first
    bytes (or its close) before closing, as a server that reads EHLO would."""

    def __init__(self, banner: bytes, port: int = 0, await_reply: bool = False) -> None:
        self.banner = banner
        self.await_reply = await_reply
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(self.banner)
                if self.await_reply:
                    conn.recv(100)

    def close(self) -> None:
        self.sock.close()
