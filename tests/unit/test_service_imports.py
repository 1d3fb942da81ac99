"""Each long-running service imports only what it uses: every Python container pays for
its imports at rest (bench service_memory: httpx ~3 MiB, stem ~3 MiB, aiosmtpd ~1 MiB of
anonymous memory per process; pydantic with pydantic-settings ~7 MiB: the services' settings are
checked in a child process, service_settings.py). A command's module and its settings, as
cli.run loads them."""

from __future__ import annotations

import subprocess
import sys

import pytest

# command -> libraries it must not load (those other services need)
PYDANTIC = ["pydantic", "pydantic_settings", "pydantic_core"]
NOT_LOADED = {
    "ingest": [*PYDANTIC, "httpx", "stem", "prometheus_client", "python_socks"],
    "guardian": [*PYDANTIC, "httpx", "stem", "aiosmtpd", "prometheus_client", "python_socks"],
    "notifier": [*PYDANTIC, "stem", "aiosmtpd", "prometheus_client", "python_socks"],
    "watch": [*PYDANTIC, "httpx", "aiosmtpd"],
}


@pytest.mark.parametrize(("command", "absent"), NOT_LOADED.items())
def test_a_service_loads_only_its_own_libraries(command: str, absent: list[str]) -> None:
    code = ("import sys\nfrom onionpost import cli\n"
            f"function, load = cli._resolve({command!r})\nload()\n"
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert f"onionpost.{command}.command" in loaded
    assert [name for name in absent if name in loaded] == []
