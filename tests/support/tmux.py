"""A terminal program (neomutt) driven as a person types it: tmux send-keys, capture-pane."""

from __future__ import annotations

import subprocess
import uuid

from tests.support.net import wait_for


class Terminal:
    def __init__(self, command: str, env: dict[str, str], width: int = 150,
                 height: int = 40) -> None:
        self.socket = f"term-{uuid.uuid4().hex[:8]}"
        subprocess.run(["tmux", "-L", self.socket, "new-session", "-d", "-s", "main", "-x",
                        str(width), "-y", str(height), command], env=env, check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "-L", self.socket, "capture-pane", "-p", "-t", "main"],
                              capture_output=True, text=True, check=False).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "-L", self.socket, "send-keys", "-t", "main", *keys],
                       check=True)

    def wait_for(self, text: str, what: str, timeout: float = 60) -> str:
        """The screen once it shows `text`; else fail with the screen as it is."""
        try:
            return str(wait_for(lambda: (screen := self.screen()) and text in screen and screen,
                                timeout=timeout, what=what))
        except TimeoutError:
            raise AssertionError(f"no {text!r} ({what}) on the screen:\n{self.screen()}"
                                 ) from None

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], check=False)


def neomutt_send(terminal: Terminal, to: str, subject: str) -> str:
    """m, To, Subject, the editor (set in the config), then y; returns the compose screen."""
    terminal.keys("m")
    terminal.wait_for("To:", "the To prompt")
    terminal.keys(to, "Enter")
    terminal.wait_for("Subject:", "the Subject prompt")
    terminal.keys(subject, "Enter")
    compose = terminal.wait_for("y:Send", "the compose screen")
    terminal.keys("y")
    terminal.wait_for("Mail sent", f"the message to {to} sent", timeout=120)
    return compose
