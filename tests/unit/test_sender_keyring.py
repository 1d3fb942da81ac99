"""Reading gpg's --with-colons listings: which key is whose, and what it may still do."""

from __future__ import annotations

from onionpost.sender.keyring import parse_listing

ONION = "anon@" + "a" * 55 + "d.onion"
LISTING = f"""\
sec:u:255:22:95D3181E8E2A512C:1796063020:::u:::scESC:::+::ed25519:::0:
fpr:::::::::DCA6ECDABABB90EE4AB62DC095D3181E8E2A512C:
grp:::::::::B0841E03467E5FD7AE4871DED15AED0E8B4C617E:
uid:u::::1796063020::6D14C9D20F7A4AF9DE7FCBAE2490FB4A760E01FA::{ONION}::::::::::0:
ssb:u:255:18:72F15E5D58B677CB:1796063020::::::e:::+::cv25519::
fpr:::::::::CE935BD113E0145645811DB672F15E5D58B677CB:
pub:e:255:22:1111111111111111:1577836800:1577923200::u:::sc:::::ed25519:::0:
fpr:::::::::1111111111111111111111111111111111111111:
uid:e::::1577836800::AAAA::Old One <old@x.onion>::::::::::0:
pub:r:255:22:2222222222222222:1796063000:::u:::sc:::::ed25519:::0:
fpr:::::::::2222222222222222222222222222222222222222:
uid:r::::1796063000::BBBB::a\\x3ab <ab@x.onion>::::::::::0:
"""


def test_fingerprints_user_ids_and_abilities() -> None:
    mine, expired, revoked = parse_listing(LISTING)
    assert mine.fingerprint == "DCA6ECDABABB90EE4AB62DC095D3181E8E2A512C"  # not the subkey's
    assert mine.secret and mine.can_sign and mine.can_encrypt
    assert mine.user_ids == [ONION] and mine.created == 1796063020
    assert not expired.secret and not expired.can_sign and not expired.can_encrypt
    assert revoked.user_ids == ["a:b <ab@x.onion>"] and not revoked.usable


def test_a_key_names_an_address_bare_or_in_angle_brackets() -> None:
    mine, expired, _ = parse_listing(LISTING)
    assert mine.names(ONION.upper())
    assert expired.names("old@x.onion")
    assert not expired.names("ld@x.onion") and not mine.names("anon@other.onion")
