"""`onionpost notifier`: the rq worker that posts the guardian's notices to ntfy."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from onionpost import events, worker
from onionpost.exits import ConfigError
from onionpost.notifier import jobs
from onionpost.notifier.ntfy import TOPIC, Ntfy
from onionpost.service_settings import load_settings as load_settings  # cli.run's reader

if TYPE_CHECKING:
    from onionpost.settings import Settings

log = logging.getLogger("onionpost.notifier")


def main(argv: list[str], settings: Settings) -> int:
    argparse.ArgumentParser(
        prog="onionpost notifier",
        description="Post alerts and new-mail notices to ntfy (ONIONPOST_NTFY_*): an rq "
                    "worker on the 'notify' queue. Stateless: run as many as you like.",
    ).parse_args(argv)
    if not TOPIC.match(settings.ntfy_topic):
        raise ConfigError(f"ONIONPOST_NTFY_TOPIC: ntfy topics are 1-64 letters, digits, - or _"
                          f" (got {settings.ntfy_topic!r})")
    ntfy = Ntfy(settings.ntfy_url, settings.ntfy_topic, token=settings.ntfy_token,
                user=settings.ntfy_user, password=settings.ntfy_password,
                timeout=settings.ntfy_timeout)
    jobs.install(jobs.Notifier(ntfy, events.connect(settings.redis_url),
                               settings.ntfy_retry_seconds))
    auth = "token" if settings.ntfy_token else "password" if settings.ntfy_user else "none"
    log.info("event=start auth=%s new_mail=%s", auth, settings.notify_new_mail)
    try:
        return worker.run(events.NOTIFY_QUEUE, settings.redis_url, "notifier",
                          settings.log_level, jobs.JOBS)
    finally:
        ntfy.close()
