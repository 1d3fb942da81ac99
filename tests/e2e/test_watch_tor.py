"""The onion watch over the private Tor network: probe, heal, and `onionpost watch` alerts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from onionpost import tor
from onionpost.watch import episode, probe, publication, state
from tests.e2e.conftest import MailOnion, ingest_behind
from tests.e2e.test_tor_control import random_onion_address
from tests.e2e.tornet import OnionService, TorNetwork
from tests.support.banner_server import BannerServer
from tests.support.net import free_port, wait_for
from tests.support.servers import IngestProcess
from tests.support.watch_process import WatchProcess

pytestmark = pytest.mark.e2e
TIMEOUT = 30.0


@pytest.fixture
def greeting_server() -> Iterator[BannerServer]:
    server = BannerServer(b"220 somebody.else ESMTP\r\n", await_reply=True)
    yield server
    server.close()


def run_probe(tor_network: TorNetwork, address: str) -> probe.Result:
    with tor_network.client_controller() as controller:
        return probe.probe(controller, f"127.0.0.1:{tor_network.socks_port}", address, TIMEOUT)


def test_probe_reaches_our_onion_and_counts_its_introduction_points(
        tor_network: TorNetwork, mail_onion: MailOnion,
        onion_ingest: Callable[..., IngestProcess]) -> None:
    onion_ingest()
    result = run_probe(tor_network, mail_onion.address)
    assert result.stage is None, result.detail
    assert result.intro_points is not None and 3 <= result.intro_points <= 20
    assert result.descriptor_seconds is not None and result.connect_seconds is not None
    assert result.latency_seconds is not None
    assert result.latency_seconds >= result.descriptor_seconds + result.connect_seconds


def test_probe_names_the_stage_that_failed(
        tor_network: TorNetwork, mail_onion: MailOnion, greeting_server: BannerServer) -> None:
    unknown = run_probe(tor_network, random_onion_address())
    assert unknown.stage == "descriptor"
    no_ingest = run_probe(tor_network, mail_onion.address)  # nothing listens behind it
    assert no_ingest.stage == "connection"
    assert no_ingest.intro_points is not None
    impostor = tor_network.add_onion_service("impostor", {25: greeting_server.port})
    wrong = run_probe(tor_network, impostor.address)
    assert (wrong.stage, wrong.detail) == ("banner", "greeting '220 somebody.else ESMTP'")


def test_heal_publishes_a_descriptor_tor_never_uploaded(
        tor_network: TorNetwork, start_ingest: Callable[..., IngestProcess]) -> None:
    port = free_port()
    wedged = tor_network.add_onion_service("wedged", {25: port}, proxy_protocol=True,
                                           options=["PublishHidServDescriptors 0"],
                                           await_upload=False)
    ingest_behind(start_ingest, wedged.address, port)
    assert run_probe(tor_network, wedged.address).stage == "descriptor"

    with wedged.controller() as controller:
        # built (its introduction points are up) but never uploaded
        wait_for(lambda: tor.service_descriptor(controller, wedged.address), timeout=60,
                 what="the descriptor tor builds")
        uploads = publication.UploadListener(wedged.address)
        uploads.attach(controller)
        done = publication.heal(controller, wedged.address)
        assert done == "descriptor re-uploaded to the responsible HSDirs (HSPOST)"
        wait_for(lambda: uploads.uploads.last_uploaded is not None, timeout=30,
                 what="the upload the heal made")


# --- `onionpost watch` as a process ---------------------------------------------------------
INTERVAL, FAILURES = 3, 2
ALERT_WAIT = 180.0  # generous: tor is slow on a busy machine; the speed goal is in bench/


@pytest.fixture
def start_watch(tor_network: TorNetwork, redis_url: str,
                tmp_path: Path) -> Iterator[Callable[[OnionService], WatchProcess]]:
    started: list[WatchProcess] = []

    def start(service: OnionService) -> WatchProcess:
        watch = WatchProcess.start(tor_network, service, redis_url, tmp_path, INTERVAL,
                                   FAILURES)
        started.append(watch)
        return watch

    yield start
    for watch in started:
        watch.stop()


def test_watch_alerts_once_when_the_onion_goes_down_and_once_when_it_is_back(
        tor_network: TorNetwork, start_ingest: Callable[..., IngestProcess],
        start_watch: Callable[[OnionService], WatchProcess]) -> None:
    port = free_port()
    service = tor_network.add_onion_service("watched", {25: port}, proxy_protocol=True)
    ingest_behind(start_ingest, service.address, port)
    watch = start_watch(service)
    wait_for(lambda: "event=probe reachable=1" in watch.logs(), timeout=ALERT_WAIT,
             what="a successful probe")
    assert "onion_service_reachable 1.0" in watch.metrics()
    assert "onion_service_introduction_points_number 3.0" in watch.metrics()

    service.tor.stop()
    down = watch.wait_notice("watch_down", ALERT_WAIT)
    watch.wait_probes(FAILURES + 1, ALERT_WAIT)  # it keeps failing: still one alert
    assert len(watch.notices("watch_down")) == 1
    assert watch.notices("watch_back") == []
    assert "onion_service_reachable 0.0" in watch.metrics()
    assert f"{service.address} failed {FAILURES} probes in a row" in down["message"]
    assert "Heal: none possible: the service tor's ControlPort does not answer" in down["message"]

    service.start()
    back = watch.wait_notice("watch_back", ALERT_WAIT)
    watch.wait_probes(2, ALERT_WAIT)
    assert len(watch.notices("watch_back")) == 1
    assert len(watch.notices("watch_down")) == 1
    assert re.search(r"after \d+ (s|min) of downtime", back["message"]), back["message"]
    assert back["id"].removeprefix("watch-back-") == down["id"].removeprefix("watch-down-")
    assert "onion_service_reachable 1.0" in watch.metrics()
    report = status_of_watch(watch)
    assert report["last_success"] > report["last_failure"]["at"]
    assert report["last_failure"]["stage"] in ("introduction", "connection", "descriptor")
    assert report["p50_latency"] > 0
    # (the last upload: the restarted tor may upload before the watch is back on its
    # ControlPort; the wedged-publication test below checks that the watch records uploads)


def status_of_watch(watch: WatchProcess) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "onionpost", "status", "--json"], capture_output=True, text=True,
        timeout=120, env={**os.environ, "ONIONPOST_REDIS_URL": watch.redis_url,
                          "ONIONPOST_TOR_CONTROL": "127.0.0.1:1", "ONIONPOST_DOMAIN": ""})
    return dict(json.loads(result.stdout)["watch"])


def test_watch_heals_a_wedged_publication_and_says_so(
        tor_network: TorNetwork, start_ingest: Callable[..., IngestProcess],
        start_watch: Callable[[OnionService], WatchProcess]) -> None:
    port = free_port()
    wedged = tor_network.add_onion_service("wedged-watch", {25: port}, proxy_protocol=True,
                                           options=["PublishHidServDescriptors 0"],
                                           await_upload=False)
    ingest_behind(start_ingest, wedged.address, port)
    watch = start_watch(wedged)
    down = watch.wait_notice("watch_down", ALERT_WAIT)
    assert "its descriptor could not be fetched" in down["message"]
    assert "Heal: descriptor re-uploaded to the responsible HSDirs (HSPOST)" in down["message"]
    assert "event=heal" in watch.logs()
    summary = state.read_summary(redis.Redis.from_url(watch.redis_url))
    assert summary is not None and summary.last_heal.endswith("(HSPOST)")
    wait_for(lambda: state.read_summary(redis.Redis.from_url(watch.redis_url)).last_uploaded,
             timeout=ALERT_WAIT, what="the upload the heal made, seen by the watch")


def test_consensus_validity_brackets_our_clock(mail_onion: MailOnion) -> None:
    """The skew check's input, read from a real tor: a clock in sync is inside it."""
    with mail_onion.service.controller() as controller:
        validity = publication.consensus_validity(controller)
    assert validity is not None
    valid_after, valid_until = validity
    now = time.time()
    assert valid_after < valid_until
    assert abs(episode.clock_skew(now, valid_after, valid_until)) <= episode.MAX_CLOCK_SKEW
