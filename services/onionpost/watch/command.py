"""`onionpost watch`: probe our onion every interval, alert, heal, keep state and metrics."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import redis
import stem
from rq import Queue
from stem.control import Controller

from onionpost import events, maildir, tor
from onionpost.events import Notice
from onionpost.exits import EX_OK, ConfigError
from onionpost.guardian.state import read_pause
from onionpost.service_settings import load_settings as load_settings  # cli.run's reader
from onionpost.setting_values import split_hostport
from onionpost.watch import alerts, episode, publication, state
from onionpost.watch.episode import Decision, Episode  # the field `episode` hides the module
from onionpost.watch.metrics import Metrics
from onionpost.watch.probe import Result, probe

if TYPE_CHECKING:
    from onionpost.settings import Settings

log = logging.getLogger("onionpost.watch")


@dataclass
class Watch:
    settings: Settings
    connection: redis.Redis
    address: str
    metrics: Metrics = field(default_factory=Metrics)
    # The one watch process holds the episode; Redis keeps it across restarts (restore()),
    # so a Redis outage never makes it forget an alert or a heal it made.
    episode: episode.Episode = field(default_factory=episode.Episode)
    service: Controller | None = None
    uploads: publication.UploadListener | None = None

    def cycle(self) -> Result:
        """One probe and everything that follows from it."""
        result = self.probe()
        current = self.episode
        decision = episode.decide(current, episode.Probe(result.at, result.stage, result.detail),
                                  self.settings.watch_failures)
        new_state, notices = decision.state, []
        heal_text = self.heal() if decision.heal else None
        if decision.unreachable and new_state.down_since is not None:
            notices.append(alerts.unreachable(
                self.address, new_state.down_since, new_state.failures, result.stage or "",
                result.detail, heal_text, self.publication_text()))
        elif heal_text and new_state.down_since is not None:
            notices.append(alerts.healed_again(self.address, new_state.down_since, result.at,
                                               heal_text))
        if decision.back_after is not None and current.down_since is not None:
            notices.append(alerts.back(self.address, current.down_since, decision.back_after))
        new_state, skew_notice = self.check_clock(new_state)
        notices += [skew_notice] if skew_notice else []
        self.episode = new_state
        self._save(new_state, result, notices, heal_text)
        self._log(result, decision, heal_text)
        return result

    # --- the two tors -----------------------------------------------------------------
    def probe(self) -> Result:
        try:
            with tor.connect(self.settings, self.settings.watch_control,
                             self.settings.watch_cookie_file) as controller:
                return probe(controller, self.settings.tor_socks, self.address,
                             self.settings.watch_timeout)
        except tor.TorControlError as error:
            return Result(time.time(), "connection", str(error))

    def service_controller(self) -> Controller | None:
        """The service tor's ControlPort, kept open for its HS_DESC upload events;
        reconnected (events since then only) after tor restarted."""
        if self.service is not None and self.service.is_alive():
            return self.service
        try:
            self.service = tor.connect(self.settings)
        except tor.TorControlError:
            self.service = None
            return None
        if self.uploads is None:
            self.uploads = publication.UploadListener(self.address)
        self.uploads.attach(self.service)
        return self.service

    def heal(self) -> str:
        controller = self.service_controller()
        if controller is None:
            return "none possible: the service tor's ControlPort does not answer"
        try:
            return publication.heal(controller, self.address)
        except (stem.ControllerError, stem.SocketError) as error:
            return f"failed: {error}"

    def check_clock(self, current: Episode) -> tuple[Episode, Notice | None]:
        controller = self.service_controller()
        validity = publication.consensus_validity(controller) if controller else None
        if validity is None:
            return current, None
        now = time.time()
        skew = episode.clock_skew(now, *validity)
        new_state, alert = episode.decide_skew(current, skew)
        return new_state, alerts.clock_skew(now, skew) if alert else None

    def publication_text(self) -> str:
        uploads = self.uploads.uploads if self.uploads else publication.Uploads()
        if self.service_controller() is None:
            return "The service tor's ControlPort does not answer."
        if uploads.last_uploaded is None:
            return "No descriptor upload seen since the watch started."
        ago = alerts.duration_text(time.time() - uploads.last_uploaded)
        return (f"Last descriptor upload {ago} ago, {uploads.failed_since} failed uploads "
                f"since.")

    # --- Redis, metrics, log --------------------------------------------------------------
    def restore(self) -> None:
        """The episode a previous watch left in Redis (an alert it sent is not repeated)."""
        try:
            self.episode = state.read_episode(self.connection)
        except redis.RedisError as error:
            log.warning("event=redis_down error=%s effect=new_episode", type(error).__name__)

    def _save(self, new_state: Episode, result: Result, notices: list[Notice],
              heal_text: str | None) -> None:
        uploads = self.uploads.uploads if self.uploads else publication.Uploads()
        fields = {"upload_failed_since": str(uploads.failed_since)}
        if uploads.last_uploaded is not None:
            fields["last_uploaded"] = f"{uploads.last_uploaded:.3f}"
        if heal_text:
            fields["last_heal"] = f"{utc(result.at)}: {heal_text}"
        self.metrics.probed(result)
        self.metrics.published(uploads.last_uploaded, uploads.failed_since)
        try:
            with self.connection.pipeline(transaction=True) as pipe:
                pipe.multi()  # rq's enqueue(pipeline=) wants MULTI already open
                state.record(pipe, new_state, result, fields)
                for notice in notices:
                    events.publish_notice(self.connection, notice, pipe)
                pipe.execute()
            self._stack_metrics()
        except redis.RedisError as error:
            log.warning("event=redis_down error=%s lost_notices=%s", type(error).__name__,
                        ",".join(n.kind for n in notices) or "none")

    def _stack_metrics(self) -> None:
        depths = {name: Queue(name, connection=self.connection).count
                  for name in (events.EVENTS_QUEUE, events.NOTIFY_QUEUE)}
        paused = read_pause(self.connection) is not None
        self.metrics.stack(maildir.scan(self.settings.maildir), paused, depths)

    def _log(self, result: Result, decision: Decision, heal_text: str | None) -> None:
        if result.stage is None:
            log.info("event=probe reachable=1 latency=%.2f intro_points=%s",
                     result.latency_seconds or 0, result.intro_points)
        else:
            log.warning("event=probe reachable=0 stage=%s detail=%r failures=%d",
                        result.stage, result.detail, decision.state.failures)
        if heal_text:
            log.warning("event=heal result=%r", heal_text)


def utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def main(argv: list[str], settings: Settings) -> int:
    argparse.ArgumentParser(
        prog="onionpost watch",
        description="Probe our onion from outside every ONIONPOST_WATCH_INTERVAL seconds "
                    "(fresh descriptor, new circuit, SMTP greeting), alert through the "
                    "notifier after ONIONPOST_WATCH_FAILURES failures and when it is back, "
                    "make tor republish when it stays down, serve Prometheus metrics."
    ).parse_args(argv)
    address = tor.our_address(settings)
    if not address:
        raise ConfigError("no onion address: set ONIONPOST_DOMAIN or make "
                          f"{settings.onion_hostname_file} readable")
    watch = Watch(settings, events.connect(settings.redis_url), address)
    host, port = split_hostport(settings.watch_metrics_listen)
    watch.metrics.serve(host, port)
    log.info("event=start interval=%.0f failures=%d metrics=%s", settings.watch_interval,
             settings.watch_failures, settings.watch_metrics_listen)
    run(watch, settings.watch_interval)
    return EX_OK


def run(watch: Watch, interval: float) -> None:
    """Probe every `interval` seconds (from start to start) until SIGTERM/SIGINT."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stopping.set())
    watch.restore()
    watch.service_controller()  # listen to uploads from the start
    while not stopping.is_set():
        began = time.monotonic()
        watch.cycle()
        stopping.wait(max(0.0, interval - (time.monotonic() - began)))
