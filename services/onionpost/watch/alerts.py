"""What the watch tells the owner: unreachable, back, healed again, clock skew."""

from __future__ import annotations

from onionpost.events import Notice
from onionpost.notifier.notices import DEFAULT, HIGH, URGENT

STAGE_TEXT = {
    "descriptor": "its descriptor could not be fetched from the directories",
    "introduction": "its introduction points did not answer",
    "connection": "no connection could be made through Tor",
    "banner": "the connection opened but the SMTP greeting was wrong or missing",
}


def episode_id(down_since: float) -> str:
    return str(round(down_since * 1000))


def duration_text(seconds: float) -> str:
    """'45 s', '12 min', '3 h 5 min', '2 d 4 h'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"


def unreachable(address: str, down_since: float, failures: int, stage: str, detail: str,
                heal: str | None, publication: str) -> Notice:
    lines = [f"{address} failed {failures} probes in a row from outside: "
             f"{STAGE_TEXT.get(stage, stage)} ({detail}).", publication]
    lines.append(f"Heal: {heal}" if heal else "Heal: not now (at most one per 30 min).")
    return Notice(f"watch-down-{episode_id(down_since)}", "watch_down",
                  "Onion unreachable", "\n".join(lines), URGENT, ["rotating_light"])


def healed_again(address: str, down_since: float, at: float, heal: str) -> Notice:
    return Notice(f"watch-heal-{episode_id(down_since)}-{round(at)}", "watch_heal",
                  "Onion still unreachable: healed again",
                  f"{address} is still unreachable. Heal: {heal}", HIGH, ["wrench"])


def back(address: str, down_since: float, downtime: float) -> Notice:
    return Notice(f"watch-back-{episode_id(down_since)}", "watch_back", "Onion reachable again",
                  f"{address} answers again from outside after {duration_text(downtime)} "
                  f"of downtime.", DEFAULT, ["white_check_mark"])


def clock_skew(at: float, skew: float) -> Notice:
    direction = "behind" if skew > 0 else "ahead of"
    return Notice(f"watch-skew-{round(at)}", "watch_skew", "Clock skew",
                  f"This server's clock is {duration_text(abs(skew))} {direction} the Tor "
                  f"consensus. Tor fails in odd ways with a wrong clock: set up NTP.",
                  HIGH, ["clock"])
