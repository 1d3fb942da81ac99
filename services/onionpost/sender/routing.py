"""Where each recipient goes: names from the address book, one route per onion domain,
and a clear refusal for anything that is not a valid v3 onion address."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import getaddresses

from onionpost import onion
from onionpost.exits import EX_NOUSER

ONLY_ONIONS = "onionpost delivers only to .onion addresses"


@dataclass(frozen=True)
class Refusal:
    recipient: str
    reason: str
    exit_code: int = EX_NOUSER


@dataclass
class Route:
    """One SMTP session: an onion domain and all its recipients."""

    domain: str
    recipients: list[str] = field(default_factory=list)


@dataclass
class Plan:
    routes: list[Route] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def split(recipients: Iterable[str]) -> list[str]:
    """Command-line or header recipients ("a@x, Bob <b@y>", "frank") -> bare addresses."""
    return [address for _, address in getaddresses(list(recipients)) if address]


def domain_problem(domain: str) -> str | None:
    if not domain.lower().rstrip(".").endswith(onion.SUFFIX):
        return ONLY_ONIONS
    return onion.problem(domain)


def plan(recipients: Iterable[str], lookup: Callable[[str], str | None]) -> Plan:
    """Group recipients by onion domain (first-seen order, no duplicates); refuse the rest."""
    result = Plan()
    by_domain: dict[str, Route] = {}
    seen: set[str] = set()
    for recipient in recipients:
        address = recipient if "@" in recipient else lookup(recipient)
        if address is None:
            result.refused.append(Refusal(
                recipient, "not an address and not in the address book"
                           f" (onionpost contacts add {recipient} ADDRESS)"))
            continue
        local, _, domain = address.rpartition("@")
        domain = domain.lower().rstrip(".")
        reason = domain_problem(domain) if local else "no mailbox before the @"
        if reason:
            result.refused.append(Refusal(recipient, reason))
            continue
        address = f"{local}@{domain}"
        if address.lower() in seen:
            continue
        seen.add(address.lower())
        if domain not in by_domain:
            by_domain[domain] = Route(domain)
            result.routes.append(by_domain[domain])
        by_domain[domain].recipients.append(address)
    return result
