"""`onionpost owner join` on the laptop: reading what `add` printed, the auth file, the fetch
key and the ssh Host block; idempotent (the CLI runs without a tor: ControlPort closed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.net import free_port

from onionpost.exits import CommandError
from onionpost.owner.invitation import Invitation, parse
from onionpost.owner.join import merge_host_block
from onionpost.tor.client_auth import OwnerKey

SID = "lux6itkmc2qhczbli6jwke4cmcemn7dldwhidea3nqfucfdrsjkvldyd"
ONION = SID + ".onion"
MISTYPED = "pv4ozjdmhrgbmeexr2uu5jelr5sfdrjwgjqsfgmosmxmkcd4oquexoyd"
KEY = OwnerKey.generate()
FETCH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIe5AmMQGphBKFb/8bpyBPquh03EqV+Gx4McGCeue/c1"


def _invitation(ssh_key: str | None = FETCH_KEY) -> Invitation:
    return Invitation("laptop", ONION, KEY.client_line(ONION), "onionpost", ssh_key, "alerts")


def test_what_add_prints_is_what_join_reads() -> None:
    text = _invitation().render()
    assert parse(text, "other") == _invitation()
    assert parse("pasted in a mail:\n> " + text.replace("\n", "\n> "), "x").auth_private == \
        KEY.client_line(ONION)
    assert parse(text, "x").private_key_b64 == KEY.private_b64


def test_the_auth_line_alone_is_enough() -> None:
    invitation = parse(KEY.client_line(ONION) + "\n", "onionpost")
    assert (invitation.address, invitation.ssh_user, invitation.ssh_key) == (
        ONION, "onionpost", None)


def test_no_ssh_key_is_said_and_read_back() -> None:
    text = _invitation(None).render()
    assert "no ssh key installed" in text
    assert parse(text, "x").ssh_key is None


@pytest.mark.parametrize("text", [
    "", "no key here",
    KEY.client_line(ONION) + "\n" + OwnerKey.generate().client_line(ONION),  # two keys
    KEY.client_line(ONION).replace(SID, MISTYPED),  # address checksum
    KEY.client_line(ONION)[:-3],  # truncated key
])
def test_damaged_input_is_refused(text: str) -> None:
    with pytest.raises(CommandError) as raised:
        parse(text, "x")
    assert raised.value.code == 65


def test_an_ssh_line_for_another_onion_is_refused() -> None:
    text = _invitation().render().replace(f"@{ONION}", "@" + "a" * 56 + ".onion")
    with pytest.raises(CommandError, match="copy one `owner add` output whole"):
        parse(text, "x")


BLOCK = "Host owner\n  HostName x.onion\n"


def test_host_block_goes_first_and_keeps_the_rest() -> None:
    mine = "Host *\n  ServerAliveInterval 30\n"
    merged = merge_host_block(mine, "owner", BLOCK)
    assert merged.startswith("# >>> onionpost owner join: Host owner")
    assert merged.endswith("\n" + mine)


def test_host_block_is_replaced_in_place() -> None:
    first = merge_host_block("Host a\n  User b\n", "owner", BLOCK)
    moved = "Host z\n  User y\n" + first
    again = merge_host_block(moved, "owner", BLOCK.replace("x.onion", "y.onion"))
    assert again.count("\nHost owner\n") == 1
    assert again.startswith("Host z\n  User y\n# >>> onionpost")
    assert "y.onion" in again and "x.onion" not in again
    assert again.endswith("Host a\n  User b\n")
    assert merge_host_block(again, "owner", BLOCK.replace("x.onion", "y.onion")) == again


def test_a_host_of_the_owners_own_is_not_touched() -> None:
    with pytest.raises(CommandError, match="--alias"):
        merge_host_block("Host vps owner\n  HostName 1.2.3.4\n", "owner", BLOCK)
    assert merge_host_block("Host owners\n", "owner", BLOCK).endswith("Host owners\n")


def _join(home: Path, *args: str, text: str = "",
          torrc: str = "/nonexistent") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "ONIONPOST_TOR_CONTROL": f"127.0.0.1:{free_port()}"}
    return subprocess.run([sys.executable, "-m", "onionpost", "owner", "join", "--torrc", torrc,
                           *args], input=text, capture_output=True, text=True, env=env,
                          timeout=60)


def _snapshot(home: Path) -> dict[str, bytes]:
    return {str(path.relative_to(home)): path.read_bytes()
            for path in sorted(home.rglob("*")) if path.is_file()}


def test_join_writes_everything_and_a_rerun_changes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host *\n  ServerAliveInterval 30\n")
    key = _join(home, "--print-ssh-key")
    assert key.returncode == 0, key.stderr
    assert key.stdout.startswith("ssh-ed25519 ") and key.stdout.count("\n") == 1
    text = Invitation("laptop", ONION, KEY.client_line(ONION), "onionpost",
                      key.stdout.strip(), "alerts").render()

    first = _join(home, text=text)
    files = _snapshot(home)
    second = _join(home, text=text)

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert _snapshot(home) == files
    auth = home / ".config" / "onionpost" / "onion_auth" / "onionpost-owner.auth_private"
    assert auth.read_text() == KEY.client_line(ONION) + "\n"
    assert auth.stat().st_mode & 0o777 == 0o600
    assert f"ClientOnionAuthDir {auth.parent}\n" in first.stdout  # the torrc line to add
    assert "reload your tor" in first.stdout
    assert "ready: onionpost fetch owner" in first.stdout
    resolved = subprocess.run(["ssh", "-G", "-F", str(home / ".ssh" / "config"), "owner"],
                              capture_output=True, text=True, check=True).stdout
    assert f"hostname {ONION}\n" in resolved
    assert "user onionpost\n" in resolved
    assert "identitiesonly yes\n" in resolved
    assert f"identityfile {home / '.ssh' / 'onionpost_fetch'}\n" in resolved
    assert "-m onionpost tor-connect %h %p\n" in resolved
    assert "serveraliveinterval 30\n" in resolved  # the owner's own lines still apply


def test_join_uses_the_torrc_auth_dir(tmp_path: Path) -> None:
    auth_dir = tmp_path / "onion_auth"
    torrc = tmp_path / "torrc"
    torrc.write_text(f"SocksPort 9050\nClientOnionAuthDir {auth_dir}\n")

    result = _join(tmp_path / "home", text=_invitation().render(), torrc=str(torrc))

    assert result.returncode == 0, result.stderr
    assert (auth_dir / "onionpost-owner.auth_private").read_text().startswith(SID)
    assert "ClientOnionAuthDir" not in result.stdout
    # a fetch key other than the one the server has: the laptop is told what to do
    assert "onionpost owner add laptop --ssh-key 'ssh-ed25519 " in result.stdout


def test_join_refuses_bad_input_and_writes_nothing(tmp_path: Path) -> None:
    result = _join(tmp_path / "home", text="hello\n")
    assert result.returncode == 65
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "home").exists()


def test_a_crafted_invitation_cannot_add_ssh_options(tmp_path: Path) -> None:
    """What join writes to ~/.ssh/config comes only from checked parts of the text."""
    text = (f"ssh:          evil\n  ProxyCommand sh -c 'touch {tmp_path}/owned'@{ONION}\n"
            f"ssh:          root@{ONION}\n  LocalCommand touch {tmp_path}/owned\n"
            + KEY.client_line(ONION) + "\n")
    home = tmp_path / "home"

    result = _join(home, text=text)

    assert result.returncode == 0, result.stderr
    lines = (home / ".ssh" / "config").read_text().splitlines()
    keywords = [line.split()[0] for line in lines if line.strip() and not line.startswith("#")]
    assert keywords == ["Host", "HostName", "User", "ProxyCommand", "IdentityFile",
                        "IdentitiesOnly", "UserKnownHostsFile", "StrictHostKeyChecking"]
    assert "  User root" in lines
    assert not any("touch" in line for line in lines)


def test_a_tor_directory_we_cannot_write_gets_the_install_line(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "onion_auth"
    not_a_directory.write_text("")
    home = tmp_path / "home"

    result = _join(home, "--auth-dir", str(not_a_directory), text=_invitation().render())

    assert result.returncode == 0, result.stderr
    fallback = home / ".config" / "onionpost" / "onion_auth" / "onionpost-owner.auth_private"
    assert fallback.read_text() == KEY.client_line(ONION) + "\n"
    assert f"{fallback} {not_a_directory / 'onionpost-owner.auth_private'}\n" in result.stdout
    assert "sudo install -m 600" in result.stdout
    assert "has no ClientOnionAuthDir" not in result.stdout


def test_a_home_with_a_space_or_percent_resolves_in_ssh(tmp_path: Path) -> None:
    # "/Users/Jane Doe": the ssh config took "/Users/Jane" as the IdentityFile; ssh
    # expands % tokens in IdentityFile and ProxyCommand.
    home = tmp_path / "Jane Doe %d"
    result = _join(home, text=_invitation().render())
    assert result.returncode == 0, result.stderr
    resolved = subprocess.run(["ssh", "-G", "-F", str(home / ".ssh" / "config"), "owner"],
                              capture_output=True, text=True, check=True).stdout
    identity = str(home / ".ssh" / "onionpost_fetch").replace("%", "%%")  # -G: unexpanded
    assert f"identityfile {identity}\n" in resolved
    assert f"userknownhostsfile {home / '.ssh' / 'onionpost_known_hosts'}\n" in resolved


@pytest.mark.parametrize("alias", ["owner\n  ProxyCommand touch /tmp/x", "../../x", "a b",
                                   "*", "!owner", "-oProxyCommand=x", ""])
def test_an_alias_that_is_not_a_plain_name_is_refused(alias: str, tmp_path: Path) -> None:
    # It went as is into the ssh config (a newline: any ssh option) and the auth file name.
    result = _join(tmp_path / "home", f"--alias={alias}", text=_invitation().render())
    assert result.returncode == 64, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "home").exists()
