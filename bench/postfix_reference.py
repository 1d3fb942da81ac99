"""A private Postfix instance on loopback, configured as our reference receiver is.

Its own config, queue and data directories under a temporary directory, one extra
`127.0.0.1:<port> inet n - y - - smtpd` service and no `smtp inet` on port 25; mail for the
test domain is delivered by virtual(8) into one Maildir (`static:box/`), fsynced as Postfix
always does. Nothing system-wide is touched except the log file under /var/log (Postfix only
accepts a maillog_file there) and a running system Postfix is left alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.net import free_port, port_open, wait_for

# master.proto's internal services, minus `smtp inet` (port 25) and the pipe transports.
MASTER_CF = """\
{port_line}
pickup    unix  n       -       y       60      1       pickup
cleanup   unix  n       -       y       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       y       1000?   1       tlsmgr
rewrite   unix  -       -       y       -       -       trivial-rewrite
bounce    unix  -       -       y       -       0       bounce
defer     unix  -       -       y       -       0       bounce
trace     unix  -       -       y       -       0       bounce
verify    unix  -       -       y       -       1       verify
flush     unix  n       -       y       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       y       -       -       smtp
relay     unix  -       -       y       -       -       smtp
showq     unix  n       -       y       -       -       showq
error     unix  -       -       y       -       -       error
retry     unix  -       -       y       -       -       error
discard   unix  -       -       y       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       y       -       -       lmtp
anvil     unix  -       -       y       -       1       anvil
scache    unix  -       -       y       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# What smtpd needs inside its chroot (the queue directory), as Debian's init script copies.
CHROOT_FILES = ("etc/services", "etc/resolv.conf", "etc/hosts", "etc/localtime",
                "etc/nsswitch.conf", "etc/host.conf")
VIRTUAL_UID = 65534  # nobody: owns the Maildir virtual(8) delivers into


@dataclass
class PostfixReference:
    base: Path
    domain: str
    port: int = field(default_factory=free_port)

    @property
    def config(self) -> Path:
        return self.base / "etc"

    @property
    def queue(self) -> Path:
        return self.base / "spool"

    @property
    def mailboxes(self) -> Path:
        return self.base / "vmail"

    @property
    def maildir(self) -> Path:
        return self.mailboxes / "box"

    @property
    def log_file(self) -> Path:
        return Path("/var/log") / f"onionpost-bench-postfix-{self.port}.log"

    def main_cf(self) -> str:
        settings = {
            "compatibility_level": "3.6",
            "config_directory": self.config,
            "queue_directory": self.queue,
            "data_directory": self.base / "data",
            "myhostname": "reference.invalid",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "relayhost": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "virtual_mailbox_domains": self.domain,
            "virtual_mailbox_base": self.mailboxes,
            "virtual_mailbox_maps": "static:box/",
            "virtual_uid_maps": f"static:{VIRTUAL_UID}",
            "virtual_gid_maps": f"static:{VIRTUAL_UID}",
            "maillog_file": self.log_file,
            "smtputf8_enable": "yes",
        }
        return "".join(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> PostfixReference:
        for directory in (self.config, self.queue, self.base / "data", self.mailboxes):
            directory.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)  # virtual(8) runs as VIRTUAL_UID and must reach vmail/
        shutil.chown(self.base / "data", "postfix")
        os.chown(self.mailboxes, VIRTUAL_UID, VIRTUAL_UID)
        (self.config / "main.cf").write_text(self.main_cf())
        port_line = f"127.0.0.1:{self.port} inet n - y - - smtpd"
        (self.config / "master.cf").write_text(MASTER_CF.format(port_line=port_line))
        for name in CHROOT_FILES:
            source = Path("/") / name
            if source.exists():
                (self.queue / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, self.queue / name)
        self._postfix("check")
        self._postfix("start")
        wait_for(lambda: port_open(self.port), what=f"postfix on {self.port}")
        return self

    def stop(self) -> None:
        if (self.queue / "pid" / "master.pid").exists():
            self._postfix("stop")
            wait_for(lambda: not port_open(self.port), what="postfix to stop")

    def delivered(self) -> int:
        try:
            return sum(1 for _ in os.scandir(self.maildir / "new"))
        except FileNotFoundError:
            return 0

    def set_aside_maildir(self, suffix: str) -> None:
        """Move the delivered mail away; virtual(8) makes a fresh Maildir on next delivery."""
        if self.maildir.exists():
            self.maildir.rename(self.mailboxes / f"box.{suffix}")

    def queue_empty(self) -> bool:
        return not any(any(os.scandir(self.queue / sub))
                       for sub in ("incoming", "active", "deferred", "maildrop")
                       if (self.queue / sub).exists())

    def wait_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.queue_empty() and time.monotonic() < deadline:
            time.sleep(0.1)

    def cleanup(self) -> None:
        self.log_file.unlink(missing_ok=True)

    def _postfix(self, action: str) -> None:
        subprocess.run(["postfix", "-c", str(self.config), action], check=True,
                       capture_output=True, timeout=60)
