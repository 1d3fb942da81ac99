"""The watch's Prometheus endpoint: onionprobe's metric names for the probe, ours beside."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Gauge, make_wsgi_app

from onionpost.maildir import Usage
from onionpost.watch.probe import Result

SERVER_NAME = "metrics"


class Metrics:
    """One registry of our own (no process/platform collectors: nothing about the host)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        gauge = self._gauge
        self.reachable = gauge("onion_service_reachable", "1 when the last probe got the "
                               "SMTP greeting of our onion from outside")
        self.latency = gauge("onion_service_latency_seconds",
                             "descriptor fetch to QUIT answered, last successful probe")
        self.descriptor_reachable = gauge("onion_service_descriptor_reachable",
                                          "1 when the last probe fetched our descriptor")
        self.descriptor_latency = gauge("onion_service_descriptor_latency_seconds",
                                        "time to fetch our descriptor from the HSDirs")
        self.intro_points = gauge("onion_service_introduction_points_number",
                                  "introduction points in our descriptor")
        self.connect = gauge("onion_service_connection_latency_seconds",
                             "SOCKS connect through a new circuit, last probe")
        self.last_upload = gauge("onionpost_descriptor_last_upload_timestamp_seconds",
                                 "when an HSDir last accepted our descriptor (0: not seen)")
        self.upload_failures = gauge("onionpost_descriptor_upload_failures",
                                     "failed descriptor uploads since the last success")
        self.messages = gauge("onionpost_mailbox_messages", "messages in the mailbox")
        self.bytes = gauge("onionpost_mailbox_bytes", "bytes in the mailbox")
        self.paused = gauge("onionpost_ingest_paused", "1 while ingest refuses mail")
        self.queue = Gauge("onionpost_queue_depth", "jobs waiting", ["queue"],
                           registry=self.registry)

    def _gauge(self, name: str, text: str) -> Gauge:
        return Gauge(name, text, registry=self.registry)

    def serve(self, host: str, port: int) -> WSGIServer:
        """prometheus_client's app in a thread, without its server's `Server: WSGIServer/0.2
        CPython/3.x` header and error pages (we never name our software or its version)."""
        server = make_server(host, port, _anonymous(make_wsgi_app(self.registry)),
                             _ThreadingServer, handler_class=_QuietHandler)
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        return server

    def probed(self, result: Result) -> None:
        self.reachable.set(result.stage is None)
        self.descriptor_reachable.set(result.descriptor_seconds is not None)
        if result.latency_seconds is not None:
            self.latency.set(result.latency_seconds)
        if result.descriptor_seconds is not None:
            self.descriptor_latency.set(result.descriptor_seconds)
        if result.connect_seconds is not None:
            self.connect.set(result.connect_seconds)
        if result.intro_points is not None:
            self.intro_points.set(result.intro_points)

    def published(self, last_uploaded: float | None, failed_since: int) -> None:
        self.last_upload.set(last_uploaded or 0)
        self.upload_failures.set(failed_since)

    def stack(self, usage: Usage, paused: bool, depths: dict[str, int]) -> None:
        self.messages.set(usage.messages)
        self.bytes.set(usage.bytes)
        self.paused.set(paused)
        for name, depth in depths.items():
            self.queue.labels(name).set(depth)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 makes a burst of connects wait for SYN retries


class _QuietHandler(WSGIRequestHandler):
    timeout = 10  # seconds a client may sit idle: an idle socket must not hold a thread forever

    def version_string(self) -> str:
        return SERVER_NAME

    def log_message(self, format: str, *args: Any) -> None:
        """One line per scrape would drown the watch's own lines."""


def _anonymous(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def named(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, ("Server", SERVER_NAME)], exc_info)
        return app(environ, start)
    return named
