"""The watch's Prometheus endpoint: hostile clients (idle sockets, garbage, big requests), and
no software name or version in anything it answers."""

from __future__ import annotations

import socket

import httpx
from tests.support.net import free_port

from onionpost.watch.metrics import Metrics

IDLE_CONNECTIONS = 200


def serve() -> int:
    port = free_port()
    metrics = Metrics()
    metrics.serve("127.0.0.1", port)
    metrics.reachable.set(1)
    return port


def scrape(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text


def test_idle_connections_do_not_block_scrapes() -> None:
    port = serve()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(IDLE_CONNECTIONS)]
    try:
        assert "onion_service_reachable 1.0" in scrape(port)
    finally:
        for sock in idle:
            sock.close()


def test_garbage_and_oversized_requests_get_an_answer_and_change_nothing() -> None:
    port = serve()
    requests = [b"\x00\xff" * 100 + b"\r\n\r\n",
                b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
                b"GET /metrics HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n"]
    for request in requests:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            answer = b"".join(iter(lambda: sock.recv(4096), b""))
        assert answer  # an error page (HTTP/0.9 style for bytes that are no request line)
        assert b"Python" not in answer and b"WSGIServer" not in answer
    assert "onion_service_reachable 1.0" in scrape(port)


def test_a_scrape_names_no_software() -> None:
    port = serve()
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.headers["server"] == "metrics"
    assert "Python" not in str(response.headers)
