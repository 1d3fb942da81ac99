"""A bare Debian 12, as a cloud image gives it, for tests of the README's install path.

`debootstrap --variant=minbase bookworm` plus python3, git and CA certificates only (no make,
no python3-venv, no sudo), imported as a Docker image. The root filesystem is built once per
machine: its tarball is cached under /var/tmp and the image kept in the engine. The only
thing added is this machine's CA bundle ($SSL_CERT_FILE), without which nothing inside
could pass the HTTPS proxy here; a real VPS trusts the public CAs already.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from onionpost.stack import run

IMAGE = "onionpost-test/bookworm-bare:1"
CACHE = Path("/var/tmp/onionpost-fresh")
TARBALL = CACHE / "bookworm-bare.tar"
EXTRA_PACKAGES = "python3,git,ca-certificates"
HOST_CA = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
# The container sees the host's CA bundle at the same path, as pip and Python expect it.
CA_PATH = "/etc/ssl/certs/ca-certificates.crt"
CONTAINER_ENV = {"LANG": "C.UTF-8", "SSL_CERT_FILE": CA_PATH, "PIP_CERT": CA_PATH,
                 "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
SOURCES = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (as tests/compose/standin_images.sh finds it)."""
    for source in SOURCES:
        text = source.read_text() if source.is_file() else ""
        for uri in re.findall(r"^(?:URIs:|deb)\s+(\S+)", text, re.MULTILINE):
            if uri.rstrip("/").endswith("/debian"):
                return str(uri)
    return "http://deb.debian.org/debian"


def build_tarball() -> None:
    rootfs = CACHE / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.mkdir(parents=True)
    log = CACHE / "debootstrap.log"
    with log.open("w") as out:
        done = subprocess.run(["debootstrap", "--variant=minbase", f"--include={EXTRA_PACKAGES}",
                               "bookworm", str(rootfs), debian_mirror()],
                              stdout=out, stderr=subprocess.STDOUT, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"debootstrap failed, see {log}")
    shutil.copy(HOST_CA, rootfs / "usr/local/share/ca-certificates/host-ca.crt")
    run(["chroot", str(rootfs), "update-ca-certificates"], timeout=120)
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (rootfs / cache).glob("*"):
            if item.is_file():
                item.unlink()
    partial = TARBALL.with_suffix(".partial")
    run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], timeout=600)
    partial.rename(TARBALL)
    shutil.rmtree(rootfs)


def bare_image() -> str:
    """The image's tag, building the root filesystem (minutes) only the first time."""
    if run(["docker", "image", "inspect", IMAGE], check=False).returncode == 0:
        return IMAGE
    CACHE.mkdir(parents=True, exist_ok=True)
    if not TARBALL.exists():
        build_tarball()
    run(["docker", "import", "--change", "WORKDIR /root", "--change", "CMD [\"bash\"]",
         str(TARBALL), IMAGE], timeout=600)
    return IMAGE


def missing_from_bare(image: str) -> list[str]:
    """What a bare Debian lacks that a README command must install (checked, not assumed)."""
    probe = "for c in make sudo pipx tor docker; do command -v $c >/dev/null || echo $c; done; " \
            "python3 -c 'import ensurepip' 2>/dev/null && dpkg -s python3-venv >/dev/null 2>&1 " \
            "|| echo python3-venv"
    return run(["docker", "run", "--rm", image, "sh", "-c", probe]).stdout.split()
