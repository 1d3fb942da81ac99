"""The watch's Prometheus registry: onionprobe's names, ours, and nothing about the host."""

from __future__ import annotations

from prometheus_client import generate_latest

from onionpost.maildir import Usage
from onionpost.watch.metrics import Metrics
from onionpost.watch.probe import Result


def test_a_failed_probe_after_a_good_one_reads_unreachable_with_the_last_figures() -> None:
    metrics = Metrics()
    metrics.probed(Result(1.0, None, "", 0.5, 0.25, 1.5, 3))
    metrics.probed(Result(2.0, "introduction", "SOCKS 0xf2", 0.4, None, None, 4))
    metrics.published(1234.0, 2)
    metrics.stack(Usage(7, 7000), True, {"events": 1, "notify": 0})
    text = generate_latest(metrics.registry).decode()
    for line in ["onion_service_reachable 0.0", "onion_service_descriptor_reachable 1.0",
                 "onion_service_latency_seconds 1.5",
                 "onion_service_descriptor_latency_seconds 0.4",
                 "onion_service_introduction_points_number 4.0",
                 "onionpost_descriptor_last_upload_timestamp_seconds 1234.0",
                 "onionpost_descriptor_upload_failures 2.0", "onionpost_mailbox_messages 7.0",
                 "onionpost_mailbox_bytes 7000.0", "onionpost_ingest_paused 1.0",
                 'onionpost_queue_depth{queue="events"} 1.0']:
        assert line in text.splitlines(), line


def test_nothing_about_the_host_or_the_software() -> None:
    text = generate_latest(Metrics().registry).decode()
    assert "python_info" not in text
    assert "process_" not in text
