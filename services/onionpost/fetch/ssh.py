"""The OpenSSH side of fetch: the ssh command line and the forced-command key line (pure)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SshCall:
    """How to run the system's ssh client; its config, agent and known_hosts all apply."""

    destination: str
    options: list[str] = field(default_factory=list)   # -o passthrough, first wins
    identity: str | None = None
    program: list[str] = field(default_factory=lambda: ["ssh"])  # e.g. ssh -F FILE

    def resolve_argv(self) -> list[str]:
        """`ssh -G`: the configuration ssh would use for this destination."""
        return [*self.program, "-G", *self._user_options(), "--", self.destination]

    def argv(self, remote_command: str, resolved: dict[str, str],
             tor_connect: str) -> list[str]:
        """No tty, no X11 or agent forwarding; a .onion host goes through tor-connect."""
        return [*self.program, "-T", "-x", "-a", *self._user_options(),
                *defaults_for(resolved, tor_connect), "--", self.destination, remote_command]

    def _user_options(self) -> list[str]:
        argv: list[str] = []
        for option in self.options:
            argv += ["-o", option]
        if self.identity:
            argv += ["-i", self.identity]
        return argv


def parse_resolved(text: str) -> dict[str, str]:
    """`ssh -G` output ("keyword value" lines) as a dict; the first value of a keyword."""
    resolved: dict[str, str] = {}
    for line in text.splitlines():
        keyword, _, value = line.partition(" ")
        resolved.setdefault(keyword.lower(), value)
    return resolved


def defaults_for(resolved: dict[str, str], tor_connect: str) -> list[str]:
    """Options we add unless the owner's config already says otherwise."""
    options: list[str] = []
    host = resolved.get("hostname", "").lower().rstrip(".")
    if host.endswith(".onion") and resolved.get("proxycommand", "none") == "none" \
            and resolved.get("proxyjump", "none") == "none":
        options += ["-o", f"ProxyCommand={tor_connect} %h %p"]
    if resolved.get("serveraliveinterval", "0") == "0":
        # a silently dropped connection (common over tor) ends the run instead of hanging cron
        options += ["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
    return options


def serve_command(onionpost: str = "onionpost", maildir: str | None = None,
                  compose_file: str | None = None) -> str:
    """The command that serves fetch on the server: plain install, or the compose stack
    (fetch-serve inside the running ingest container, which has the mail volume)."""
    if compose_file:
        return (f"docker compose -f {shlex.quote(compose_file)} exec -T ingest "
                "onionpost fetch-serve")
    command = f"{onionpost} fetch-serve"
    return f"{command} --maildir {shlex.quote(maildir)}" if maildir else command


def authorized_key_line(command: str, public_key: str) -> str:
    """An authorized_keys line whose key can only run `command`: `restrict` turns off
    pty, forwarding of ports/agent/X11 and ~/.ssh/rc; the command ignores what the client asks."""
    words = public_key.split()
    if len(words) < 2 or not words[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise ValueError("not an OpenSSH public key (expected e.g. 'ssh-ed25519 AAAA... name')")
    escaped = command.replace("\\", "\\\\").replace('"', '\\"')
    return f'command="{escaped}",restrict {" ".join(words[:3])}'
