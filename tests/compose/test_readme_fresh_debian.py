"""The README's first commands, read from README.md, on a bare Debian 12 (bare_debian.py).

They run in fresh containers of that image, on a fresh `git clone` of this repository
(the committed tree, as a newcomer gets it), with no stdin:
- `./run up` as root without sudo: installs make, python3-venv, the venv, docker.io and
  Compose v2. An unprivileged container cannot run a Docker engine, so it must end on the one
  line saying dockerd did not start (starting the stack itself is what test_stack.py covers).
- then, in the same container, `./run test` as root, CI=true, with
  PYTEST_ARGS="--collect-only -q": the test packages `make test` installs, lint, and the
  collection of every test; it stops where the tests would start.
- `./run laptop` as a user with sudo: tor, pipx, then onionpost and onionpost-sendmail.
- one line, no traceback, no make error: not Debian, not root and no sudo, no network.
apt's and pip's downloads are cached under /var/tmp (same packages, fetched once).
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from onionpost.stack import DockerEngine, run
from tests.support.bare_debian import CACHE, CONTAINER_ENV, bare_image, missing_from_bare
from tests.support.readme import README, first_commands

pytestmark = pytest.mark.compose

ROOT = README.parent
INSTALL_TIMEOUT = 1200
APT_CACHE = CACHE / "apt-archives"
PIP_CACHE = CACHE / "pip"
SUDO_USER_SETUP = ("apt-get update -qq && apt-get install -y -qq sudo >/dev/null"
                   " && useradd -m owner && echo 'owner ALL=(ALL) NOPASSWD: ALL'"
                   " > /etc/sudoers.d/owner")


@pytest.fixture(scope="module")
def image(docker_engine: DockerEngine) -> str:
    return bare_image()


def fresh_clone(directory: Path) -> Path:
    target = directory / "onionpost"
    run(["git", "clone", "--quiet", str(ROOT), str(target)], timeout=120)
    target.chmod(0o755)
    return target


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    return fresh_clone(tmp_path)


def docker_args(clone: Path, apt_cache: Path = APT_CACHE) -> list[str]:
    """The clone at /src; apt's and pip's downloads cached (apt locks its cache: one each)."""
    (apt_cache / "partial").mkdir(parents=True, exist_ok=True)
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    env = [f"--env={name}={value}" for name, value in CONTAINER_ENV.items()]
    return [*env, "-v", f"{clone}:/src", "-v", f"{apt_cache}:/var/cache/apt/archives",
            "-v", f"{PIP_CACHE}:/root/.cache/pip"]


@pytest.fixture(scope="module")
def laptop_install(image: str, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[subprocess.Popen[str]]:
    """`./run laptop` as a user with sudo, in its own container, started early so that it
    installs while the VPS test does; the laptop test reads what it printed."""
    name = f"onionpost-laptop-{secrets.token_hex(4)}"
    as_owner = ("cp -r /src /home/owner/onionpost && chown -R owner /home/owner/onionpost"
                " && cd /home/owner/onionpost && runuser -u owner -- env HOME=/home/owner"
                f" bash -c '{first_commands()['laptop']}'"
                " && tor --version | head -n1"
                " && runuser -u owner -- /home/owner/.local/bin/onionpost-sendmail --help"
                " && runuser -u owner -- /home/owner/.local/bin/onionpost fetch --help")
    clone = fresh_clone(tmp_path_factory.mktemp("laptop"))
    job = subprocess.Popen(
        ["docker", "run", "--rm", "--name", name, *docker_args(clone, CACHE / "apt-laptop"),
         image, "bash", "-c", f"{SUDO_USER_SETUP} && {as_owner}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield job
    run(["docker", "rm", "-f", name], timeout=120, check=False)
    if job.poll() is None:  # its output was never read: the docker client may be blocked
        job.kill()
    job.wait(timeout=120)


def output_of(command: list[str], timeout: float) -> tuple[int, str]:
    done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return done.returncode, done.stdout


def in_container(image: str, clone: Path, script: str, *args: str,
                 timeout: float = INSTALL_TIMEOUT) -> tuple[int, str]:
    """Run a bash script in a fresh container, the clone at /src; (exit code, all output)."""
    return output_of(["docker", "run", "--rm", *docker_args(clone), *args, image,
                      "bash", "-c", script], timeout)


class Container:
    """One fresh container of the image kept running, for several commands in a row."""

    def __init__(self, image: str, clone: Path) -> None:
        self.name = f"onionpost-fresh-{secrets.token_hex(4)}"
        run(["docker", "run", "-d", "--rm", "--name", self.name, *docker_args(clone), image,
             "sleep", "infinity"], timeout=120)

    def exec(self, script: str, *args: str) -> tuple[int, str]:
        return output_of(["docker", "exec", *args, self.name, "bash", "-c", script],
                         INSTALL_TIMEOUT)

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *_: object) -> None:
        run(["docker", "rm", "-f", self.name], timeout=120, check=False)


def assert_clean(output: str) -> None:
    assert "Traceback" not in output, output
    assert "make: ***" not in output and "command not found" not in output, output


def test_the_bare_image_lacks_what_the_commands_must_install(image: str) -> None:
    assert set(missing_from_bare(image)) == {"make", "sudo", "pipx", "tor", "docker",
                                             "python3-venv"}


def test_the_start_then_the_test_command_install_what_they_need(
        image: str, clone: Path, laptop_install: subprocess.Popen[str]) -> None:
    """One VPS: `./run up` from bare, then `make test` there (`./run up` installed make)."""
    with Container(image, clone) as vps:
        status, output = vps.exec(f"cd /src && {first_commands()['up']}")
        assert_clean(output)
        assert "onionpost: installing with apt: make python3-venv" in output, output
        assert "onionpost: installed docker.io: Docker version" in output, output
        assert "onionpost: linked Docker Compose version v" in output, output
        assert status != 0
        assert output.strip().splitlines()[-1].startswith(
            "onionpost: the Docker engine did not start (dockerd exited: "), output

        status, output = vps.exec(f"cd /src && {first_commands()['test']}",
                                  "--env=CI=true", "--env=PYTEST_ARGS=--collect-only -q")
        assert_clean(output)
        assert status == 0, output
        assert "installing: " in output, output  # system-deps.sh: the test packages
        assert "All checks passed!" in output, output  # make test's lint step ran: ruff,
        assert "Success: no issues found" in output, output  # then mypy
        assert re.search(r"^\d{3,} tests collected", output, re.MULTILINE), output


def test_the_laptop_command_installs_tor_and_the_commands(
        laptop_install: subprocess.Popen[str]) -> None:
    output, _ = laptop_install.communicate(timeout=INSTALL_TIMEOUT)
    assert_clean(output)
    assert laptop_install.returncode == 0, output
    assert "onionpost: installing with apt: tor pipx" in output, output
    assert "onionpost: installed: tor" in output and "/home/owner/.local/bin" in output, output
    assert "Tor version 0.4" in output, output
    assert "usage: onionpost-sendmail" in output and "usage: onionpost fetch" in output, output


@pytest.mark.parametrize(("setup", "docker_args", "says"), [
    ("printf 'ID=fedora\\nPRETTY_NAME=\"Fedora Linux 40\"\\n' > /etc/os-release && ",
     [], "on Debian or Ubuntu only (this is Fedora Linux 40)"),
    ("useradd -m guest && runuser -u guest -- ", [],
     "needs root: run ./run as root, or install sudo"),
    ("", ["--network=none"], "cannot reach the package mirrors"),
], ids=["not-debian", "no-sudo", "no-network"])
def test_a_step_that_cannot_work_says_why_in_one_line(image: str, clone: Path, setup: str,
                                                      docker_args: list[str], says: str) -> None:
    for command in (first_commands()["up"], first_commands()["laptop"]):
        status, output = in_container(image, clone, f"cd /src && {setup}{command}", *docker_args,
                                      timeout=120)
        lines = output.strip().splitlines()
        assert status != 0
        assert all(line.startswith("onionpost: ") for line in lines), output
        assert says in lines[-1], output
