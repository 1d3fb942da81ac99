"""One compose project of the whole stack, for tests/compose and bench, on the product's engine.

The engine (onionpost.stack.DockerEngine: installs docker.io, starts dockerd, links Compose
v2) is the one `make up` uses; `engine_with_base_images()` adds the stand-in base images
for machines without an image registry. `Stack` drives one uniquely named project: compose.yaml +
tests/compose/override.yaml.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

from onionpost.stack import COMPOSE_TIMEOUT, DockerEngine, run
from tests.support.net import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def build_standins() -> None:
    """Local stand-ins for the registry's base images, when no registry answers (cached)."""
    run(["bash", str(HERE / "standin_images.sh")], timeout=1800)


def engine_with_base_images(workdir: Path) -> DockerEngine:
    """The Docker engine with the base images the stack's Dockerfiles name."""
    engine = DockerEngine(workdir).ensure()
    build_standins()
    return engine


class Stack:
    """One compose project of the stack, with the test override and its own name."""

    def __init__(self, **variables: str) -> None:
        self.project = f"onionpost-test-{secrets.token_hex(4)}"
        self.ntfy_port = free_port()
        self.dashboard_port = free_port()
        self.env = {**os.environ, "HEALTHCHECK_INTERVAL": "2s",
                    "NTFY_PORT": str(self.ntfy_port),
                    "RQ_DASHBOARD_PORT": str(self.dashboard_port), **variables}

    def compose(self, *args: str, check: bool = True,
                timeout: float = COMPOSE_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return run(["docker", "compose", "-p", self.project, "-f", str(ROOT / "compose.yaml"),
                    "-f", str(HERE / "override.yaml"), *args],
                   timeout=timeout, check=check, env=self.env, cwd=ROOT)

    def build(self) -> None:
        self.compose("build", "--quiet")

    def up(self, *args: str) -> None:
        try:
            self.compose("up", "-d", "--wait", *args)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{self.unhealthy()}") from None

    def unhealthy(self) -> str:
        """The last healthcheck outputs and log lines of every unhealthy container."""
        report = []
        for container in self.containers():
            health = container["State"].get("Health") or {}
            if health.get("Status") == "unhealthy":
                name = container["Name"].lstrip("/")
                probes = [f"  exit {p['ExitCode']}: {p['Output'].strip()[-300:]}"
                          for p in health.get("Log", [])]
                logs = run(["docker", "logs", "--tail", "20", name], check=False)
                report += [f"{name} unhealthy:", *probes, "  logs:",
                           (logs.stdout + logs.stderr)[-2000:]]
        return "\n".join(report)

    def down(self, *args: str) -> None:
        self.compose("down", "--timeout", "10", *args)

    def python(self, service: str, code: str, *args: str,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run Python code in the running container of a service."""
        return self.compose("exec", "-T", service, "python", "-c", code, *args, check=check)

    def run_python(self, code: str, *args: str,
                   check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run Python code in a new one-off container of our image on the internal network."""
        return self.compose("run", "--rm", "--no-deps", "-T", "--entrypoint", "python", "cli",
                            "-c", code, *args, check=check)

    def containers(self) -> list[dict[str, Any]]:
        ids = self.compose("ps", "-q").stdout.split()
        if not ids:
            return []
        return list(json.loads(run(["docker", "inspect", *ids]).stdout))

    def network(self, name: str) -> dict[str, Any]:
        data = json.loads(run(["docker", "network", "inspect", f"{self.project}_{name}"]).stdout)
        return dict(data[0])

    def memory(self) -> dict[str, int]:
        """Resident memory per container (docker stats), in bytes."""
        names = [c["Name"].lstrip("/") for c in self.containers()]
        out = run(["docker", "stats", "--no-stream", "--format",
                   "{{.Name}}\t{{.MemUsage}}", *names]).stdout
        usage = {}
        for line in out.splitlines():
            name, _, mem = line.partition("\t")
            usage[name] = parse_bytes(mem.split("/")[0].strip())
        return usage


_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 10**3, "MB": 10**6,
          "GB": 10**9}


def parse_bytes(text: str) -> int:
    """'12.5MiB' -> bytes (docker's units)."""
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * _UNITS[unit])
    raise ValueError(f"not a docker size: {text!r}")


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    """wait_for with a slower poll: each probe here starts a process."""
    return wait_for(predicate, timeout, what, interval=1)
