"""Real servers for the tests: redis-server and the onionpost ingest service, as processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.net import free_port, port_open, wait_for

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RedisServer:
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory),
             "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: port_open(self.port), what=f"redis-server on {self.port}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class IngestProcess:
    """`python -m onionpost ingest` with ONIONPOST_* settings from `env`."""

    maildir: Path
    domain: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self, wait: bool = True) -> IngestProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "ONIONPOST_DOMAIN": self.domain, "ONIONPOST_MAILDIR": str(self.maildir),
               "ONIONPOST_INGEST_LISTEN": f"127.0.0.1:{self.port}", **self.env}
        self.log_path = self.maildir.parent / f"ingest-{self.port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "onionpost", "ingest"],
                                        env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait:
            wait_for(lambda: self.listening() or self.process.poll() is not None,
                     what="ingest to listen")
            if self.process.poll() is not None:
                raise RuntimeError(f"ingest exited {self.process.returncode}: {self.logs()}")
        return self

    def listening(self) -> bool:
        return "event=listening" in self.logs()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self.process = None

    def kill(self) -> int | None:
        return self.stop(signal.SIGKILL)

    def messages(self) -> list[Path]:
        return sorted((self.maildir / "new").iterdir()) if (self.maildir / "new").exists() else []
