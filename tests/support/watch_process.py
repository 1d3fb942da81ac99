"""`onionpost watch` as a process against the test Tor network, and what it queued."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from onionpost import events
from onionpost.events import NOTIFY_QUEUE
from onionpost.watch import state
from tests.e2e.tornet import OnionService, TorNetwork
from tests.support.net import free_port, wait_for


@dataclass
class WatchProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int
    redis_url: str

    @classmethod
    def start(cls, network: TorNetwork, service: OnionService, redis_url: str, base: Path,
              interval: float, failures: int, timeout: float = 15.0) -> WatchProcess:
        """The watch probes `service` through the network's client tor; its alerts wait
        in Redis's notify queue (no notifier runs)."""
        metrics_port = free_port()
        client = network.client
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "ONIONPOST_DOMAIN": service.address,
               "ONIONPOST_TOR_CONTROL": f"127.0.0.1:{service.control_port}",
               "ONIONPOST_TOR_COOKIE_FILE": str(service.cookie_file),
               "ONIONPOST_WATCH_CONTROL": f"127.0.0.1:{client.control_port}",
               "ONIONPOST_WATCH_COOKIE_FILE": str(client.cookie_file),
               "ONIONPOST_TOR_SOCKS": f"127.0.0.1:{network.socks_port}",
               "ONIONPOST_REDIS_URL": redis_url, "ONIONPOST_MAILDIR": str(base / "inbox"),
               "ONIONPOST_WATCH_INTERVAL": str(interval),
               "ONIONPOST_WATCH_FAILURES": str(failures),
               "ONIONPOST_WATCH_TIMEOUT": str(timeout),
               "ONIONPOST_WATCH_METRICS_LISTEN": f"127.0.0.1:{metrics_port}"}
        log_path = base / f"watch-{metrics_port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "onionpost", "watch"], env=env,
                                       stdout=log, stderr=subprocess.STDOUT)
        return cls(process, log_path, metrics_port, redis_url)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def notices(self, kind: str) -> list[dict[str, Any]]:
        jobs = events.queue(NOTIFY_QUEUE, redis.Redis.from_url(self.redis_url)).get_jobs()
        return [job.args[0] for job in jobs if job.args[0]["kind"] == kind]

    def probes(self) -> int:
        return int(redis.Redis.from_url(self.redis_url).zcard(state.PROBES_KEY))

    def wait_probes(self, more: int, timeout: float) -> None:
        target = self.probes() + more
        wait_for(lambda: self.probes() >= target, timeout=timeout, what=f"{more} probes")

    def wait_notice(self, kind: str, timeout: float, count: int = 1) -> dict[str, Any]:
        wait_for(lambda: len(self.notices(kind)) >= count or self.process.poll() is not None,
                 timeout=timeout, what=f"a {kind} notice\n{self.logs()}", interval=0.2)
        assert self.process.poll() is None, self.logs()
        return self.notices(kind)[count - 1]

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics").text

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")
