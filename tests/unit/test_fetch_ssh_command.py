"""The ssh command line fetch runs, and the forced-command authorized_keys line."""

from __future__ import annotations

import pytest

from onionpost.fetch.ssh import (
    SshCall,
    authorized_key_line,
    defaults_for,
    parse_resolved,
    serve_command,
)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFZq owner@laptop"
TOR = "/venv/bin/python -m onionpost tor-connect"


def test_user_options_come_first_so_they_win() -> None:
    call = SshCall("box", ["Port=2222", "User=me"], identity="~/.ssh/fetch")
    argv = call.argv("onionpost fetch-serve", {"hostname": "1.2.3.4",
                                               "serveraliveinterval": "0"}, TOR)
    assert argv[:4] == ["ssh", "-T", "-x", "-a"]
    assert argv[4:10] == ["-o", "Port=2222", "-o", "User=me", "-i", "~/.ssh/fetch"]
    assert argv[-3:] == ["--", "box", "onionpost fetch-serve"]
    assert "ServerAliveInterval=15" in argv


def test_an_onion_host_goes_through_tor_connect() -> None:
    options = defaults_for({"hostname": "abc.onion", "serveraliveinterval": "30"}, TOR)
    assert options == ["-o", f"ProxyCommand={TOR} %h %p"]


def test_the_owners_own_proxy_command_is_kept() -> None:
    assert defaults_for({"hostname": "abc.onion", "proxycommand": "nc -X 5 %h %p",
                         "serveraliveinterval": "30"}, TOR) == []
    assert defaults_for({"hostname": "abc.onion", "proxyjump": "bastion",
                         "serveraliveinterval": "30"}, TOR) == []


def test_a_clearnet_host_gets_no_proxy() -> None:
    assert not any("ProxyCommand" in o for o in defaults_for({"hostname": "example.org"}, TOR))


def test_parse_resolved_takes_the_first_value() -> None:
    text = "user root\nhostname x.onion\nidentityfile ~/.ssh/a\nidentityfile ~/.ssh/b\n"
    assert parse_resolved(text) == {"user": "root", "hostname": "x.onion",
                                    "identityfile": "~/.ssh/a"}


def test_program_with_arguments() -> None:
    call = SshCall("box", program=["ssh", "-F", "/tmp/cfg"])
    assert call.resolve_argv() == ["ssh", "-F", "/tmp/cfg", "-G", "--", "box"]


def test_serve_commands() -> None:
    assert serve_command() == "onionpost fetch-serve"
    assert serve_command(maildir="/srv/mail box/inbox") == \
        "onionpost fetch-serve --maildir '/srv/mail box/inbox'"
    assert serve_command(compose_file="/srv/onionpost/compose.yaml") == \
        "docker compose -f /srv/onionpost/compose.yaml exec -T ingest onionpost fetch-serve"


def test_authorized_key_line_restricts_the_key() -> None:
    line = authorized_key_line('onionpost fetch-serve --maildir "/x"', KEY)
    assert line == ('command="onionpost fetch-serve --maildir \\"/x\\"",restrict '
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFZq owner@laptop")


@pytest.mark.parametrize("bad", ["", "AAAA", "-----BEGIN OPENSSH PRIVATE KEY-----"])
def test_authorized_key_line_wants_a_public_key(bad: str) -> None:
    with pytest.raises(ValueError, match="not an OpenSSH public key"):
        authorized_key_line("x", bad)
