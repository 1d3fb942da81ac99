"""`onionpost owner` on the server: names, ssh keys, the files it writes, the lock entry,
`list` without keys, clashes (the CLI, run without a tor: the reload fails with exit 75)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.net import free_port

from onionpost.exits import CommandError
from onionpost.owner.join import write_file
from onionpost.owner.registry import (
    LOCK_FILE,
    OwnerAccess,
    check_name,
    parse_ssh_key,
    ssh_key_line,
)

ONION = "lux6itkmc2qhczbli6jwke4cmcemn7dldwhidea3nqfucfdrsjkvldyd.onion"
ED25519 = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIe5AmMQGphBKFb/8bpyBPquh03EqV+Gx4McGCeue/c1"
           " you@laptop")
OTHER_ED25519 = ("ssh-ed25519 "
                 "AAAAC3NzaC1lZDI1NTE5AAAAIEvQ7IfV8WKVjhNcxWDPYLGiqk6E+kEFIK2/pj4KpmFd x")


@pytest.fixture
def access(tmp_path: Path) -> OwnerAccess:
    hs_dir = tmp_path / "hs"
    hs_dir.mkdir(mode=0o700)
    (hs_dir / "hostname").write_text(ONION + "\n")
    return OwnerAccess(hs_dir, tmp_path / "owner-ssh" / "authorized_keys")


@pytest.mark.parametrize("name", ["laptop", "phone-2", "a", "0", "x" * 32])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "_lock", "Laptop", "-x", "a b", "a/b", "../x", "x" * 33,
                                  "laptop.auth", "é", "a\n"])
def test_bad_names(name: str) -> None:
    with pytest.raises(CommandError) as raised:
        check_name(name)
    assert raised.value.code == 64


def test_ssh_key_is_checked_and_normalised() -> None:
    assert parse_ssh_key(f"  {ED25519}\n") == " ".join(ED25519.split()[:2])
    # A second line (options, another key) in the comment never reaches authorized_keys.
    crafted = f'{ED25519} me\ncommand="sh" {ED25519}\n'
    assert parse_ssh_key(crafted) == " ".join(ED25519.split()[:2])


@pytest.mark.parametrize("text", ["", "ssh-ed25519", "AAAA", "ssh-dss AAAAB3NzaC1kc3M= x",
                                  "ssh-ed25519 not-base64!", "ssh-rsa " + ED25519.split()[1],
                                  'ssh-ed25519 AAAA" command="sh',
                                  'command="sh",no-pty ' + ED25519, "restrict " + ED25519,
                                  "\n" + 'from="*" ' + ED25519])
def test_bad_ssh_keys(text: str) -> None:
    with pytest.raises(CommandError) as raised:
        parse_ssh_key(text)
    assert raised.value.code == 65


def test_ssh_key_line_is_forced_and_named() -> None:
    line = ssh_key_line('onionpost "fetch-serve"', "ssh-ed25519 AAAA", "laptop")
    assert line == r'restrict,command="onionpost \"fetch-serve\"" ssh-ed25519 AAAA laptop'


def test_add_writes_the_public_half_and_the_forced_key(access: OwnerAccess) -> None:
    key = access.add("laptop", parse_ssh_key(ED25519), "onionpost fetch-serve")

    auth = access.clients / "laptop.auth"
    assert auth.read_text() == key.service_line() + "\n"
    assert auth.stat().st_mode & 0o777 == 0o600
    assert access.ssh_keys.read_text() == (
        f'restrict,command="onionpost fetch-serve" {" ".join(ED25519.split()[:2])} laptop\n')
    assert access.ssh_keys.stat().st_mode & 0o777 == 0o644
    # the private half is nowhere on the server
    private = key.client_line(ONION).rsplit(":", 1)[1]
    for path in access.onion_dir.rglob("*"):
        if path.is_file():
            assert private not in path.read_text()


def test_the_lock_entry_is_made_kept_and_hidden(access: OwnerAccess) -> None:
    access.add("laptop", None, "x")
    lock = access.clients / LOCK_FILE
    lock_line = lock.read_text()
    access.remove("laptop")

    assert sorted(path.name for path in access.clients.iterdir()) == [LOCK_FILE]
    assert lock.read_text() == lock_line
    assert lock_line.startswith("descriptor:x25519:") and len(lock_line.strip()) == 70
    assert access.owners() == []
    lock.unlink()
    access.owners()  # reading alone does not recreate it; every command does:
    access.ensure_lock()
    assert lock.read_text() != lock_line  # a fresh throw-away key


def test_owners_have_names_and_dates(access: OwnerAccess) -> None:
    access.add("phone", None, "x")
    access.add("laptop", parse_ssh_key(ED25519), "x")

    owners = access.owners()
    assert [(owner.name, owner.has_ssh_key) for owner in owners] == [
        ("laptop", True), ("phone", False)]
    assert all(owner.added is not None for owner in owners)


def test_clashes_are_refused_and_change_nothing(access: OwnerAccess) -> None:
    access.add("laptop", parse_ssh_key(ED25519), "x")
    before = (access.ssh_keys.read_text(), (access.clients / "laptop.auth").read_text())

    with pytest.raises(CommandError, match=r"owner 'laptop' exists .*owner remove laptop"):
        access.add("laptop", parse_ssh_key(OTHER_ED25519), "x")
    with pytest.raises(CommandError, match="already installed for owner 'laptop'"):
        access.add("phone", parse_ssh_key(ED25519), "x")

    assert (access.ssh_keys.read_text(), (access.clients / "laptop.auth").read_text()) == before
    assert not (access.clients / "phone.auth").exists()


def test_remove_takes_both_and_keeps_other_lines(access: OwnerAccess) -> None:
    access.ssh_keys.parent.mkdir()
    access.ssh_keys.write_text("# the admin's own notes\n")
    access.add("laptop", parse_ssh_key(ED25519), "x")
    access.add("phone", parse_ssh_key(OTHER_ED25519), "x")

    access.remove("laptop")

    assert not (access.clients / "laptop.auth").exists()
    assert (access.clients / "phone.auth").exists()
    lines = access.ssh_keys.read_text().splitlines()
    assert lines[0] == "# the admin's own notes"
    assert [line.split()[-1] for line in lines[1:]] == ["phone"]
    with pytest.raises(CommandError) as raised:
        access.remove("laptop")
    assert raised.value.code == 67


def test_a_half_added_owner_is_listed_and_removable(access: OwnerAccess) -> None:
    """A crash between the ssh key and the auth file leaves a name `remove` still finds."""
    access.ssh_keys.parent.mkdir()
    access.ssh_keys.write_text(ssh_key_line("x", parse_ssh_key(ED25519), "laptop") + "\n")

    assert [(o.name, o.added) for o in access.owners()] == [("laptop", None)]
    access.remove("laptop")
    assert access.ssh_keys.read_text() == ""


def test_write_file_leaves_no_temporary_and_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "dir" / "file"
    write_file(target, "one\n")
    write_file(target, "two\n")
    assert target.read_text() == "two\n"
    assert os.listdir(target.parent) == ["file"]


def _owner(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ONIONPOST_OWNER_ONION_DIR": str(tmp_path / "hs"),
           "ONIONPOST_OWNER_SSH_KEYS": str(tmp_path / "owner-ssh" / "authorized_keys"),
           "ONIONPOST_TOR_CONTROL": f"127.0.0.1:{free_port()}"}  # no tor: reload fails
    return subprocess.run([sys.executable, "-m", "onionpost", "owner", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_cli_add_prints_once_and_says_when_tor_did_not_reload(access: OwnerAccess,
                                                              tmp_path: Path) -> None:
    added = _owner(tmp_path, "add", "laptop", "--ssh-key", ED25519)

    assert added.returncode == 75
    assert "tor did not reload" in added.stderr and added.stderr.count("\n") == 1
    assert f"owner onion:  {ONION}" in added.stdout
    assert f"http://{ONION}/onionpost" in added.stdout
    assert f"http://{ONION}:9181/" in added.stdout
    assert ONION.removesuffix(".onion") + ":descriptor:x25519:" in added.stdout
    listing = _owner(tmp_path, "list")
    assert listing.returncode == 0
    assert listing.stdout.split()[0] == "laptop" and "ssh" in listing.stdout
    assert "x25519" not in listing.stdout and "AAAA" not in listing.stdout


def test_cli_without_the_owner_onion_says_so(tmp_path: Path) -> None:
    result = _owner(tmp_path, "add", "laptop")
    assert result.returncode == 69
    assert "hostname" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "hs" / "authorized_clients" / "laptop.auth").exists()


def test_cli_refuses_a_bad_name_before_writing(access: OwnerAccess, tmp_path: Path) -> None:
    result = _owner(tmp_path, "add", "../evil")
    assert result.returncode == 64
    assert not access.clients.exists()


def test_cli_says_which_file_it_cannot_write(access: OwnerAccess, tmp_path: Path) -> None:
    (tmp_path / "owner-ssh").write_text("")  # a file where the keys' directory should be

    result = _owner(tmp_path, "add", "laptop", "--ssh-key", ED25519)

    assert result.returncode == 73
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert "owner-ssh" in result.stderr
    assert not (access.clients / "laptop.auth").exists()


def test_owners_added_at_the_same_moment_all_keep_their_ssh_key(access: OwnerAccess) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    keys = [Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.OpenSSH, PublicFormat.OpenSSH).decode() for _ in range(16)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: access.add(f"device-{n}", keys[n], "onionpost fetch-serve"),
                      range(16)))

    installed = access.ssh_keys.read_text()
    assert [key in installed for key in keys] == [True] * 16
    assert len(access.owners()) == 16


def test_cli_bad_arguments_exit_64_and_help_0(tmp_path: Path) -> None:
    assert _owner(tmp_path).returncode == 64
    assert _owner(tmp_path, "frobnicate").returncode == 64
    assert _owner(tmp_path, "add", "--help").returncode == 0


def test_the_next_change_waits_until_the_previous_one_is_published(access: OwnerAccess
                                                                   ) -> None:
    """`then` (tor's reload and its upload) runs under the lock: a second change reloaded in
    the same second as the first one's upload would be refused by the HSDirs."""
    import threading

    publishing, release = threading.Event(), threading.Event()
    done: list[str] = []

    def publish_slowly(key: object) -> None:
        publishing.set()
        release.wait(30)
        done.append("one published")

    first = threading.Thread(target=access.add, args=("one", None, "true", publish_slowly))
    second = threading.Thread(target=access.remove, args=("one", lambda: done.append("removed")))
    first.start()
    assert publishing.wait(30)
    second.start()
    second.join(0.3)
    assert done == [] and second.is_alive()
    release.set()
    first.join(30)
    second.join(30)

    assert done == ["one published", "removed"]
