"""The watch's Prometheus endpoint: onionprobe's metric names for the probe, ours beside."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from onionpost.maildir import Usage
from onionpost.watch.probe import Result


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

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)

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
