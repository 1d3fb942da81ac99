"""A relay on 127.0.0.1 that plays a slow Tor circuit: every chunk is delayed by a set one-way
latency, and the relay counts turns (how often the client had to wait for the server). It
speaks SOCKS5 (onion name -> 127.0.0.1 port), as tor's SocksPort does for sendmail, or, for
clients without SOCKS (swaks), forwards to one fixed port."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
import time
from dataclasses import dataclass, field

CLIENT_TO_SERVER, SERVER_TO_CLIENT = "c>s", "s>c"


@dataclass
class Traffic:
    """Per connection: the direction of each chunk, in the order the relay read them."""

    directions: list[str] = field(default_factory=list)
    opened: float = field(default_factory=time.monotonic)
    closed: float = 0.0  # when the client's side ended

    @property
    def seconds(self) -> float:
        return self.closed - self.opened

    def turns(self) -> int:
        """Runs of server-to-client data: the banner, then one per time the client waited."""
        runs = 0
        previous = None
        for direction in self.directions:
            if direction == SERVER_TO_CLIENT and previous != SERVER_TO_CLIENT:
                runs += 1
            previous = direction
        return runs


class SlowRelay:
    """Runs in its own thread; `connections` holds one Traffic per accepted connection."""

    def __init__(self, latency: float, onions: dict[str, int] | None = None,
                 forward_to: int | None = None) -> None:
        self.latency = latency
        self.onions = onions or {}
        self.forward_to = forward_to
        self.connections: list[Traffic] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SlowRelay:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(self._loop)
        if tasks:  # connections end by themselves once their last chunks are delivered
            self._loop.run_until_complete(asyncio.wait(tasks, timeout=2 * self.latency + 1))
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    async def _serve(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        traffic = Traffic()
        try:
            port = self.forward_to or await self._socks_handshake(client_reader, client_writer)
            await asyncio.sleep(2 * self.latency)  # tor's stream set-up: BEGIN, CONNECTED
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", port)
            if self.forward_to is None:
                client_writer.write(b"\x05\x00\x00\x01" + bytes(4) + struct.pack("!H", 0))
        except (OSError, asyncio.IncompleteReadError, KeyError):
            client_writer.close()
            return
        self.connections.append(traffic)
        # A cancelled handler task makes asyncio's start_server log an error: end quietly.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pump(client_reader, server_writer, traffic, CLIENT_TO_SERVER),
                self._pump(server_reader, client_writer, traffic, SERVER_TO_CLIENT))

    async def _socks_handshake(self, reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> int:
        """SOCKS5 with no auth or a user name and password (tor's isolation); CONNECT only."""
        _, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if 2 in methods:
            writer.write(b"\x05\x02")
            _, name_length = await reader.readexactly(2)
            await reader.readexactly(name_length)
            (password_length,) = await reader.readexactly(1)
            await reader.readexactly(password_length)
            writer.write(b"\x01\x00")
        else:
            writer.write(b"\x05\x00")
        _, command, _, address_type = await reader.readexactly(4)
        if command != 1 or address_type != 3:
            raise KeyError("only CONNECT to a name")
        (length,) = await reader.readexactly(1)
        name = (await reader.readexactly(length)).decode()
        await reader.readexactly(2)
        return self.onions[name]

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    traffic: Traffic, direction: str) -> None:
        """Read chunks as they come; each is written `latency` seconds after it was read."""
        in_flight: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        delivery = asyncio.ensure_future(self._deliver(in_flight, writer))
        try:
            while chunk := await reader.read(65536):
                traffic.directions.append(direction)
                in_flight.put_nowait((time.monotonic() + self.latency, chunk))
        except OSError:
            pass
        if direction == CLIENT_TO_SERVER:
            traffic.closed = time.monotonic()
        in_flight.put_nowait((time.monotonic() + self.latency, b""))
        await delivery

    @staticmethod
    async def _deliver(in_flight: asyncio.Queue[tuple[float, bytes]],
                       writer: asyncio.StreamWriter) -> None:
        while True:
            due, chunk = await in_flight.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            try:
                if not chunk:
                    writer.close()
                    return
                writer.write(chunk)
                await writer.drain()
            except OSError:
                return
