"""sendmail(8) command lines as neomutt, mutt, git send-email and scripts write them."""

from __future__ import annotations

import pytest

from onionpost.sender.invocation import Invocation, UsageError, parse


def test_neomutt_style() -> None:
    call = parse(["-oi", "--", "frank@a.onion", "bob@b.onion"])
    assert call.recipients == ["frank@a.onion", "bob@b.onion"]
    assert call.dots_end_message is False
    assert call.from_headers is False


def test_git_send_email_style() -> None:
    call = parse(["-i", "-f", "me@x.onion", "you@y.onion"])
    assert call.sender == "me@x.onion"
    assert call.dots_end_message is False
    assert call.recipients == ["you@y.onion"]


def test_defaults_are_sendmails() -> None:
    assert parse([]) == Invocation()
    assert parse([]).dots_end_message is True


@pytest.mark.parametrize("argv", [["-fme@x"], ["-f", "me@x"], ["-r", "me@x"], ["-rme@x"]])
def test_sender_attached_or_separate(argv: list[str]) -> None:
    assert parse(argv).sender == "me@x"


@pytest.mark.parametrize("argv", [["-FAnn Smith"], ["-F", "Ann Smith"]])
def test_full_name(argv: list[str]) -> None:
    assert parse(argv).full_name == "Ann Smith"


def test_bundled_flags_stop_at_one_that_takes_a_value() -> None:
    call = parse(["-tif", "me@x", "a@b"])
    assert call.from_headers and not call.dots_end_message
    assert call.sender == "me@x"
    assert call.recipients == ["a@b"]
    call = parse(["-tfme@x"])
    assert call.sender == "me@x"


def test_after_double_dash_everything_is_a_recipient() -> None:
    call = parse(["-t", "--", "-f", "--partial", "a@b"])
    assert call.recipients == ["-f", "--partial", "a@b"]
    assert call.sender is None and call.partial is False


def test_our_long_options() -> None:
    call = parse(["--partial", "--keep-headers", "a@b"])
    assert call.partial and call.keep_headers
    assert parse(["--help"]).help


@pytest.mark.parametrize("argv", [
    ["-oem", "-odb", "-oQ/tmp"], ["-B8BITMIME"], ["-B", "8BITMIME"], ["-N", "never"],
    ["-R", "hdrs", "-V", "envid"], ["-bm"], ["-U", "-G", "-m", "-n"], ["-Ltag", "-h", "17"],
    ["-C/etc/sendmail.cf"], ["-d0.1"], ["-X", "/tmp/log"], ["-Ooption=1"], ["--whatever"],
])
def test_harmless_flags_are_ignored(argv: list[str]) -> None:
    call = parse([*argv, "a@b"])
    assert call.recipients == ["a@b"]
    assert call.sender is None and call.dots_end_message is True


def test_verbose() -> None:
    assert parse(["-v", "a@b"]).verbose


@pytest.mark.parametrize(("argv", "words"), [
    (["-f"], "-f requires a value"),
    (["a@b", "-F"], "-F requires a value"),
    (["-bs"], "-bs is not supported"),
    (["-bp"], "-bp is not supported"),
    (["-q"], "onionpost send-queue"),
    (["-q30m"], "onionpost send-queue"),
])
def test_what_we_cannot_do_is_a_usage_error(argv: list[str], words: str) -> None:
    with pytest.raises(UsageError, match=words):
        parse(argv)


def test_recipients_between_options() -> None:
    call = parse(["a@b", "-oi", "c@d", "-f", "me@x", "e@f"])
    assert call.recipients == ["a@b", "c@d", "e@f"]
