"""Status colours and badges: the one palette the dashboard's CSS and the SVG badges are drawn
from, the WCAG contrast they must keep, and the SVG/JSON badge itself. Pure.

The dashboard shows seven states (``views.display_state``): new, up, late, down, error,
acknowledged and paused; the Heroku page also shows ACTIVE / INACTIVE (``STATUS``). Each has a
background and a text colour whose contrast ratio is at least 4.5:1 (WCAG AA for normal text),
checked by the tests both here and on the rendered page.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

WHEAT = "#fff7d4"
SADDLE = "#593b32"
LEATHER = "#4a312a"


@dataclass(frozen=True)
class Colours:
    background: str
    text: str
    label: str  # what the badge says, capitalised for the dashboard


PALETTE: dict[str, Colours] = {
    "new": Colours("#2c4e6e", WHEAT, "New"),
    "up": Colours("#2e5e2e", WHEAT, "Up"),
    "late": Colours("#8a4500", WHEAT, "Late"),
    "down": Colours("#9b1c1c", WHEAT, "Down"),
    "error": Colours("#6b2d5c", WHEAT, "Error"),
    "acknowledged": Colours("#4b3a78", WHEAT, "Acknowledged"),
    "paused": Colours("#5a5550", WHEAT, "Paused"),
}
# A Heroku monitor's status (the PRD's ACTIVE / INACTIVE): being checked and answered, or not.
STATUS: dict[str, Colours] = {
    "ACTIVE": Colours("#2e5e2e", WHEAT, "ACTIVE"),
    "INACTIVE": Colours("#7b341e", WHEAT, "INACTIVE"),
}
# The badge's left half (the monitor's name).
LABEL = Colours(LEATHER, WHEAT, "")
MIN_CONTRAST = 4.5


def _channel(c: int) -> float:
    s = c / 255.0
    return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4


def parse_colour(colour: str) -> tuple[int, int, int]:
    """``#rgb``, ``#rrggbb`` or CSS ``rgb(r, g, b)`` / ``rgba(r, g, b, a)`` as 0-255 channels."""
    text = colour.strip().lower()
    if text.startswith("#"):
        hexes = text[1:]
        if len(hexes) == 3:
            hexes = "".join(ch * 2 for ch in hexes)
        if len(hexes) != 6:
            raise ValueError(f"not a colour: {colour!r}")
        return int(hexes[0:2], 16), int(hexes[2:4], 16), int(hexes[4:6], 16)
    if text.startswith(("rgb(", "rgba(")):
        inner = text[text.index("(") + 1 : text.rindex(")")]
        parts = [p.strip() for p in inner.replace("/", ",").split(",") if p.strip()]
        r, g, b = (round(float(p)) for p in parts[:3])
        return r, g, b
    raise ValueError(f"not a colour: {colour!r}")


def luminance(colour: str) -> float:
    r, g, b = (_channel(c) for c in parse_colour(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two colours, from 1 to 21."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def theme_css() -> str:
    """The state badges' CSS, generated from PALETTE so the page and the SVG badges never differ."""
    rules = [f".badge-{state}{{background:{c.background};color:{c.text}}}" for state, c in PALETTE.items()]
    rules += [f".status-{name.lower()}{{background:{c.background};color:{c.text}}}" for name, c in STATUS.items()]
    return "\n".join(rules) + "\n"


# -- the badge ---------------------------------------------------------------------------------

_NARROW = set("ijlrtfI.,:;'!|() ")
_WIDE = set("mwMW@%")
MAX_LABEL = 40


def text_width(text: str) -> float:
    """An estimate of ``text``'s width in 11 px Verdana/DejaVu Sans (what badges use), in px."""
    width = 0.0
    for ch in text:
        if ch in _NARROW:
            width += 3.8
        elif ch in _WIDE:
            width += 10.0
        elif ch.isupper() or ch.isdigit():
            width += 7.6
        else:
            width += 6.8
    return width


def badge_status(display_state: str) -> str:
    """What a badge says for a display state: up, late, down, new, paused or acknowledged."""
    return display_state if display_state in PALETTE else "new"


def badge_svg(label: str, status: str) -> str:
    """A flat two-part badge: ``label`` (the monitor's name) and its ``status``."""
    if len(label) > MAX_LABEL:
        label = label[: MAX_LABEL - 1] + "…"
    colours = PALETTE.get(status, PALETTE["new"])
    left = round(text_width(label) + 12)
    right = round(text_width(status) + 12)
    total = left + right
    title = escape(f"{label}: {status}")
    safe_label, safe_status = escape(label), escape(status)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{title}">'
        f"<title>{title}</title>"
        f'<rect width="{left}" height="20" fill="{LABEL.background}"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colours.background}"/>'
        '<g font-family="DejaVu Sans,Verdana,Geneva,sans-serif" font-size="11" text-anchor="middle">'
        f'<text x="{left / 2:g}" y="14" fill="{LABEL.text}">{safe_label}</text>'
        f'<text x="{left + right / 2:g}" y="14" fill="{colours.text}">{safe_status}</text>'
        "</g></svg>"
    )


def badge_json(name: str, status: str, state: str, last_seen: str | None) -> dict[str, object]:
    """The JSON badge: Heron's own fields, plus shields.io's endpoint-badge schema
    (``schemaVersion``, ``label``, ``message``, ``color``) so it can be drawn by shields too."""
    colours = PALETTE.get(status, PALETTE["new"])
    return {
        "name": name,
        "status": status,
        "state": state,
        "last_seen": last_seen,
        "schemaVersion": 1,
        "label": name,
        "message": status,
        "color": colours.background.lstrip("#"),
    }


# -- a service's badge: the worst state of its monitors -----------------------------------------

MAX_SERVICE = 200  # the longest service label a monitor may carry


def service_slug(name: str) -> str:
    """A service's name as one URL path segment: base64url of its UTF-8, without padding (a name
    may hold any character, slashes included)."""
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii").rstrip("=")


def service_from_slug(slug: str) -> str | None:
    """The name a :func:`service_slug` stands for; None for anything that is not one."""
    if not slug or len(slug) > 4 * MAX_SERVICE or not slug.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(slug + "=" * (-len(slug) % 4))
        name = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if not name or "\x00" in name or service_slug(name) != slug:
        return None  # only the one canonical spelling of a name is a badge
    return name


def service_badge_json(name: str, status: str, counts: Mapping[str, int]) -> dict[str, object]:
    """A service's JSON badge: its status, how many of its monitors are in each state, and
    shields.io's endpoint-badge fields."""
    colours = PALETTE.get(status, PALETTE["new"])
    return {
        "service": name,
        "status": status,
        "monitors": dict(counts),
        "schemaVersion": 1,
        "label": name,
        "message": status,
        "color": colours.background.lstrip("#"),
    }
