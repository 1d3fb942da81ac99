"""The tests' own privacy check: whole host names are found, chance substrings are not."""

from __future__ import annotations

import socket

import pytest
from tests.support.privacy import names_of_this_machine

ONION = "iakk74qja7y3rpnupceinik2opgue6lp6rjmek4mx6t4cxsctvm5rbyd.onion"


@pytest.fixture(autouse=True)
def host_called_vm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "vm")
    monkeypatch.setattr(socket, "getfqdn", lambda *_: "vm.example.net")


def test_a_name_inside_an_onion_address_is_chance() -> None:
    assert names_of_this_machine(f"From: <me@{ONION}>\r\nMessage-ID: <ab12vm@{ONION}>") == []


@pytest.mark.parametrize("text", ["Received: from vm by x", "EHLO VM.example.net", "vm.example.net",
                                  "host=vm;", "(vm)"])
def test_the_machine_named_as_a_whole_is_found(text: str) -> None:
    assert names_of_this_machine(text)
