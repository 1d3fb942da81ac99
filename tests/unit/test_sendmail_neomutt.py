"""`onionpost neomutt-config`: the text, and what neomutt itself reads from it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from onionpost import onion
from onionpost.sender import neomutt
from onionpost.sender.contacts import AddressBook
from onionpost.settings import ConfigError, Settings

OURS = onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
FRANK = f"frank@{onion.from_public_key(bytes(32))}"


@pytest.fixture(autouse=True)
def empty_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """neomutt-config asks gpg for the owner's key: an empty keyring, not the tester's."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))


def config(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str,
           **settings: Any) -> Path:
    book = tmp_path / "contacts"
    book.write_text(f"frank {FRANK}\n")
    mail = tmp_path / "mail"
    for folder in neomutt.FOLDERS:
        for sub in ("cur", "new", "tmp"):
            (mail / folder / sub).mkdir(parents=True, exist_ok=True)
    code = neomutt.main(["--folder", str(mail), *argv],
                        Settings(domain=OURS, address_book=book, **settings))
    assert code == 0
    path = tmp_path / "neomuttrc"
    path.write_text(capsys.readouterr().out)
    return path


def ask_neomutt(path: Path, *names: str) -> dict[str, str]:
    """`neomutt -Q` prints what neomutt itself understood from the file."""
    args = ["neomutt", "-n", "-F", str(path)]
    for name in names:
        args += ["-Q", name]
    result = subprocess.run(args, capture_output=True, text=True, timeout=30,
                            env={"HOME": str(path.parent), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    pairs = (line.removeprefix("set ").split("=", 1) for line in result.stdout.splitlines())
    return {name.strip(): value.strip().strip('"') for name, value in pairs}


def test_neomutt_reads_the_sending_settings(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    values = ask_neomutt(config(tmp_path, capsys), "sendmail", "from", "hostname", "folder",
                         "spool_file", "record", "postponed", "trash", "mbox_type",
                         "user_agent", "real_name")
    assert values["sendmail"] == "onionpost-sendmail -oi --queue"  # the outbox is on
    assert values["from"] == f"anon@{OURS}"
    assert values["hostname"] == OURS
    assert values["mbox_type"].lower() == "maildir"
    assert values["user_agent"] == "no"
    assert values["real_name"] == "anon"  # else neomutt takes the login's name from passwd
    folder = str(tmp_path / "mail")
    for name, box in [("spool_file", "inbox"), ("record", "sent"), ("postponed", "drafts"),
                      ("trash", "trash")]:
        assert values[name].rstrip("/") == f"{folder}/{box}"


def test_address_book_becomes_aliases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = config(tmp_path, capsys).read_text()
    assert f'alias frank "{FRANK}"\n' in text
    assert "send-hook" not in text and "smtp_url" not in text


def test_from_can_be_chosen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, capsys, "--from", f"ann@{OURS}")
    assert ask_neomutt(path, "from")["from"] == f"ann@{OURS}"


def test_seed_settings_are_kept() -> None:
    text = neomutt.render(f"anon@{OURS}", AddressBook())
    for line in ("set sort = threads", "set sidebar_visible = yes",
                 "bind index,pager B sidebar-toggle-visible", "auto_view text/html",
                 "mailboxes +inbox +sent +drafts +trash"):
        assert line in text


def test_strings_are_quoted_for_neomutt() -> None:
    text = neomutt.render('a"b$c`d\\@x.onion', AddressBook(), folder="~/my mail")
    assert 'set from = "a\\"b\\$c\\`d\\\\@x.onion"' in text
    assert 'set folder = "~/my mail/"' in text


def test_unknown_onion_is_a_config_error(tmp_path: Path) -> None:
    settings = Settings(domain="", onion_hostname_file=tmp_path / "missing")
    with pytest.raises(ConfigError):
        neomutt.main([], settings)


def test_the_outbox_is_on_and_the_cron_line_is_printed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = tmp_path / "contacts"
    assert neomutt.main([], Settings(domain=OURS, address_book=book)) == 0
    output = capsys.readouterr()
    [cron] = [line for line in output.err.splitlines() if line.startswith("*/5 * * * * ")]
    assert cron.split()[5] == f"ONIONPOST_DOMAIN={OURS}"  # cron has no shell variables
    command = cron.split()[6]
    assert cron.endswith(" send-queue")
    assert Path(command).is_absolute() and Path(command).name == "onionpost"  # cron's PATH
    assert f"#   {cron}\n" in output.out  # the config says it too
    assert 'set sendmail = "onionpost-sendmail -oi --queue"\n' in output.out


@pytest.mark.parametrize(("identity", "expected"), [
    (f"ann@{OURS}", f"ann@{OURS}"),
    ("ann", f"ann@{OURS}"),
])
def test_from_follows_onionpost_from(identity: str, expected: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """neomutt and `mail -s` (ONIONPOST_FROM in sendmail) send as the same address."""
    path = config(tmp_path, capsys, from_address=identity)
    assert ask_neomutt(path, "from")["from"] == expected


def test_the_cron_line_carries_the_queue_settings_given() -> None:
    settings = Settings(domain=OURS, tor_socks="127.0.0.1:9150", outbox="/home/a b/out%1",
                        address_book="/elsewhere")
    line = neomutt.cron_line("/opt/onionpost", neomutt.queue_environment(settings))
    assert line == (f"*/5 * * * * ONIONPOST_DOMAIN={OURS} ONIONPOST_TOR_SOCKS=127.0.0.1:9150"
                    " ONIONPOST_OUTBOX='/home/a b/out\\%1' /opt/onionpost send-queue")


def test_a_crafted_contact_address_cannot_run_or_set_anything(tmp_path: Path) -> None:
    # Backticks and $ are legal in a local part (RFC 5322 atext); neomutt ran the backticks
    # of an unquoted alias/crypt-hook address as a shell command when it read the config.
    marker = tmp_path / "ran"
    domain = FRANK.partition("@")[2]
    crafted = {"tick": f"x`touch${{IFS}}{marker}`@{domain}", "dollar": f"x$HOME@{domain}",
               "plus": f"a+b.c{{|}}@{domain}"}
    book = AddressBook()
    for name, address in crafted.items():
        book.add(name, address, "AB" * 20)
    for folder in neomutt.FOLDERS:
        for sub in ("cur", "new", "tmp"):
            (tmp_path / "mail" / folder / sub).mkdir(parents=True, exist_ok=True)
    path = tmp_path / "neomuttrc"
    path.write_text(neomutt.render(f"anon@{OURS}", book, str(tmp_path / "mail")))
    for name, address in crafted.items():
        result = subprocess.run(["neomutt", "-n", "-F", str(path), "-A", name],
                                capture_output=True, text=True, timeout=30,
                                env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert result.stdout.strip().strip("<>") == address
    assert not marker.exists()
    assert ask_neomutt(path, "real_name")["real_name"] == "anon"
