"""Fetch, then read as the owner does: neomutt with `onionpost neomutt-config`, in tmux."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.conftest import TEST_DOMAIN
from tests.support.fetch_rig import FetchRig
from tests.support.net import wait_for

from onionpost import maildir

SUBJECTS = [f"fetched message number {n}" for n in range(5)]


def _screen(socket: str) -> str:
    return subprocess.run(["tmux", "-L", socket, "capture-pane", "-p", "-t", "owner"],
                          capture_output=True, text=True).stdout


def test_neomutt_shows_what_fetch_brought(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "ONIONPOST_DOMAIN": TEST_DOMAIN, "TERM": "xterm"}
    for box in ("inbox", "sent", "drafts", "trash"):
        maildir.ensure(home / "mail" / box)
    config = home / "mail" / "neomutt.config"
    config.write_text(subprocess.run([sys.executable, "-m", "onionpost", "neomutt-config"],
                                     env=env, capture_output=True, text=True, check=True).stdout)

    with FetchRig(tmp_path / "fetch") as rig:
        for subject in SUBJECTS:
            name = maildir.file_name(maildir.new_queue_id(), 100)
            (rig.remote / "new" / name).write_text(
                f"From: alice@{TEST_DOMAIN}\nTo: owner@{TEST_DOMAIN}\nSubject: {subject}\n"
                "Date: Tue, 24 Nov 2026 10:00:00 +0000\n\nhello\n")
        rig.local = home / "mail" / "inbox"   # the --to default, under this HOME
        result = rig.fetch()
    assert result.returncode == 0, result.stderr

    socket = f"fetch-{uuid.uuid4().hex[:8]}"
    subprocess.run(["tmux", "-L", socket, "new-session", "-d", "-s", "owner", "-x", "120",
                    "-y", "30", f"neomutt -F {config}"], env=env, check=True)
    try:
        screen = str(wait_for(lambda: (text := _screen(socket)) and SUBJECTS[-1] in text
                              and text, what="neomutt's index"))
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], check=False)
    for subject in SUBJECTS:
        assert subject in screen
    assert "inbox          [5 / 5]" in screen  # the sidebar: 5 new of 5
    assert "~/mail/inbox [Msgs:5 New:5" in screen, screen
