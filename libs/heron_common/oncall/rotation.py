"""The rotation text format (Heii On-Call's): a pure parser with an explicit grammar.

A rotation is a list of shift specifications, one per line, in the order people take their turns::

    alice@example.com, until Mon 9:00am PT
    bob@example.com, until Mon 9:00am PT
    # nights are covered by the Berlin office
    carol@example.com, from Mon 9:00am PT until Mon 5:00pm PT

Grammar (EBNF; tokens are separated by whitespace; keywords, day names, ``am``/``pm`` and the zone
shortcuts are case-insensitive)::

    rotation = line , { newline , line } ;                 (* at most MAX_LINES lines *)
    line     = [ spec ] , [ comment ] ;                    (* at most MAX_LINE_LENGTH characters *)
    comment  = "#" , { any character } ;                   (* a whole line, or after whitespace *)
    spec     = email , [ "," , duration ] ;                (* no duration: DEFAULT_DURATION *)
    duration = [ "from" , moment ] , "until" , moment ;
    moment   = [ day ] , time , zone ;
    day      = "Mon" | "Tue" | "Wed" | "Thu" | "Fri" | "Sat" | "Sun"
             | "Monday" | "Tuesday" | "Wednesday" | "Thursday" | "Friday" | "Saturday" | "Sunday" ;
    time     = hour12 , [ ":" , minute ] , [ space ] , ( "am" | "pm" )   (* 9am, 9:00am, 9:00 am, 12:00pm *)
             | hour24 , ":" , minute ;                                    (* 17:30, 0:15, 09:00 *)
    hour12   = 1 .. 12 (one or two digits) ;  hour24 = 0 .. 23 (one or two digits) ;
    minute   = two digits, 00 .. 59 ;
    zone     = "PT" | "MT" | "CT" | "ET" | "UTC"           (* America/Los_Angeles, America/Denver,
                                                              America/Chicago, America/New_York, UTC *)
             | IANA time zone name ;                       (* Europe/Berlin, Asia/Tokyo, Etc/UTC, ... *)
    email    = text with exactly one "@", something on both sides, no whitespace or control
               characters, at most MAX_EMAIL_LENGTH characters ;

``newline`` is ``\\n`` (a ``\\r`` before it is ignored), so line numbers are what an editor shows.

Meaning (the generator in :mod:`heron_common.oncall.shifts` applies it):

- ``until X`` — the shift ends at the first moment X strictly after it starts; without a day, X is
  every day at that time;
- ``from A until B`` — the shift starts at the first moment A at or after the previous shift's end
  (so a gap is allowed), and ends at the first moment B strictly after its start;
- without ``from``, a shift starts when the previous one ends (the first one at the anchor).

Wall-clock times are read in the named zone, so ``Mon 9:00am PT`` is 16:00 UTC in summer and 17:00
UTC in winter. A time that does not exist on a day (skipped by a DST change, e.g. 2:30am when the
clocks jump from 2:00 to 3:00) is read as that many minutes past the jump (3:30am); a time that
happens twice (when the clocks go back) is its first occurrence.

A text that does not follow the grammar raises :class:`RotationError`, naming the line and what
is wrong (the API answers ``422`` with it). The parser never raises anything else, whatever the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_LINES = 500
MAX_LINE_LENGTH = 400
MAX_EMAIL_LENGTH = 254  # the longest address SMTP can carry (RFC 5321 path limit less the brackets)
MAX_ZONE_LENGTH = 64
DEFAULT_DURATION = "until Mon 9:00am PT"

ZONE_SHORTCUTS = {
    "PT": "America/Los_Angeles",
    "MT": "America/Denver",
    "CT": "America/Chicago",
    "ET": "America/New_York",
    "UTC": "UTC",
}
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAYS = {name.lower(): i for i, name in enumerate(DAY_NAMES)} | {
    full: i for i, full in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
}
_FLAGS = re.ASCII | re.IGNORECASE
_TIME_12 = re.compile(r"(1[0-2]|0?[1-9])(?::([0-5][0-9]))?(am|pm)", _FLAGS)
_TIME_24 = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", _FLAGS)
_BARE_TIME = re.compile(r"[0-9]{1,2}(?::[0-9]{2})?", _FLAGS)  # may take a separate am/pm token
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*", re.ASCII)
_TRAILING_COMMENT = re.compile(r"\s#")
TIME_EXAMPLES = "such as 9:00am, 9am, 12:00pm or 17:30"
ZONE_EXAMPLES = "PT, MT, CT, ET, UTC or an IANA name such as Europe/Berlin"


class RotationError(ValueError):
    """The rotation text is not valid: ``line`` is the 1-based line number at fault (``None`` for
    the text as a whole), ``reason`` what is wrong there."""

    def __init__(self, line: int | None, reason: str) -> None:
        super().__init__(f"line {line}: {reason}" if line is not None else reason)
        self.line = line
        self.reason = reason

    def to_dict(self) -> dict[str, int | str | None]:
        return {"line": self.line, "message": str(self)}


@lru_cache(maxsize=512)
def _zoneinfo(key: str) -> ZoneInfo | None:
    """The zone for an IANA key, or None. Only names of the IANA form are looked up, so no text
    can reach the file system as a path (ZoneInfo refuses relative paths too)."""
    if len(key) > MAX_ZONE_LENGTH or not _ZONE_NAME.fullmatch(key):
        return None
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_key(zone: str) -> str:
    """The IANA key a zone as written stands for (``PT`` → ``America/Los_Angeles``)."""
    return ZONE_SHORTCUTS.get(zone, zone)


@dataclass(frozen=True, slots=True)
class Moment:
    """A wall-clock time in a zone, on one day of the week or (``weekday`` None) every day."""

    hour: int
    minute: int
    zone: str  # as written in canonical form: a shortcut ("PT") or an IANA key
    weekday: int | None = None  # 0 = Monday … 6 = Sunday

    @property
    def tzinfo(self) -> ZoneInfo:
        tz = _zoneinfo(zone_key(self.zone))
        if tz is None:  # only a Moment built by hand can get here; the parser checks its zones
            raise ValueError(f"unknown time zone {self.zone!r}")
        return tz

    def on(self, day: date) -> datetime:
        """This moment on the local calendar day ``day``, in UTC (first occurrence; a skipped time
        is read past the jump — the ``fold=0`` rule of PEP 495)."""
        return datetime(day.year, day.month, day.day, self.hour, self.minute, tzinfo=self.tzinfo).astimezone(UTC)

    def _candidates(self, t: datetime) -> list[datetime]:
        local_day = t.astimezone(self.tzinfo).date()
        days = (local_day + timedelta(days=offset) for offset in range(-1, 9))
        return [self.on(d) for d in days if self.weekday is None or d.weekday() == self.weekday]

    def next_after(self, t: datetime) -> datetime:
        """The first occurrence strictly after ``t`` (an aware datetime), in UTC."""
        return min(c for c in self._candidates(t) if c > t)

    def at_or_after(self, t: datetime) -> datetime:
        """The first occurrence at or after ``t`` (an aware datetime), in UTC."""
        return min(c for c in self._candidates(t) if c >= t)

    def __str__(self) -> str:
        hour12 = self.hour % 12 or 12
        text = f"{hour12}:{self.minute:02d}{'am' if self.hour < 12 else 'pm'} {self.zone}"
        return text if self.weekday is None else f"{DAY_NAMES[self.weekday]} {text}"


@dataclass(frozen=True, slots=True)
class ShiftSpec:
    """One line of a rotation: who, until when, and (``start``, the ``from`` clause) from when."""

    email: str
    until: Moment
    start: Moment | None = None
    line: int = 0  # where it was written (1-based), for messages

    def __str__(self) -> str:
        start = f"from {self.start} " if self.start is not None else ""
        return f"{self.email}, {start}until {self.until}"


@dataclass(frozen=True, slots=True)
class Rotation:
    specs: tuple[ShiftSpec, ...]

    @property
    def members(self) -> tuple[str, ...]:
        """Everyone in the rotation, once each, in the order of their first line."""
        return tuple(dict.fromkeys(spec.email for spec in self.specs))

    def text(self) -> str:
        """The rotation in canonical form (parses back to the same specs, line numbers aside)."""
        return "".join(f"{spec}\n" for spec in self.specs)


def parse(text: str) -> Rotation:
    """Parse a rotation text (see the module's grammar); :class:`RotationError` if it is invalid."""
    if not isinstance(text, str):
        raise RotationError(None, "the rotation must be text")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # a final newline ends the last line; it does not start another
    if len(lines) > MAX_LINES:
        raise RotationError(MAX_LINES + 1, f"a rotation has at most {MAX_LINES} lines")
    specs = []
    for number, raw in enumerate(lines, start=1):
        spec = _parse_line(raw.removesuffix("\r"), number)
        if spec is not None:
            specs.append(spec)
    if not specs:
        raise RotationError(None, "the rotation has no shifts: write one 'EMAIL, DURATION' per line")
    return Rotation(tuple(specs))


def _parse_line(raw: str, line: int) -> ShiftSpec | None:
    if len(raw) > MAX_LINE_LENGTH:
        raise RotationError(line, f"the line is longer than {MAX_LINE_LENGTH} characters")
    body = raw.strip()
    if not body or body.startswith("#"):
        return None
    comment = _TRAILING_COMMENT.search(body)
    if comment is not None:
        body = body[: comment.start()].rstrip()
    email_part, comma, duration = body.partition(",")
    email = _email(email_part.strip(), line)
    if not comma:
        start, until = _duration(DEFAULT_DURATION.split(), line)
    elif not duration.strip():
        raise RotationError(line, f"expected a duration after the comma, such as '{DEFAULT_DURATION}'")
    elif "," in duration:
        raise RotationError(line, "one shift per line: the only comma is the one after the email address")
    else:
        start, until = _duration(duration.split(), line)
    return ShiftSpec(email=email, until=until, start=start, line=line)


def _word(token: str) -> str:
    # Only ASCII folds to our keywords: str.lower() maps some non-ASCII letters (the Kelvin sign)
    # to ASCII ones, which must not make a keyword.
    return token.lower() if token.isascii() else token


def _email(text: str, line: int) -> str:
    if not text:
        raise RotationError(line, "expected 'EMAIL, DURATION', such as 'alice@example.com, until Mon 9:00am PT'")
    words = text.split()
    if len(words) > 1:
        if _word(words[1]) in ("until", "from"):
            raise RotationError(line, f"expected a comma between the email address {words[0]!r} and the duration")
        raise RotationError(line, f"an email address has no spaces: {text!r}")
    if text.count("@") != 1:
        raise RotationError(line, f"an email address has exactly one @: {text!r}")
    local, _, domain = text.partition("@")
    if not local or not domain:
        raise RotationError(line, f"an email address has a name before the @ and a domain after it: {text!r}")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
        raise RotationError(line, f"the email address contains a control character: {text!r}")
    if len(text) > MAX_EMAIL_LENGTH:
        raise RotationError(line, f"an email address has at most {MAX_EMAIL_LENGTH} characters")
    return text


def _duration(tokens: list[str], line: int) -> tuple[Moment | None, Moment]:
    first = _word(tokens[0])
    start = None
    pos = 1
    if first == "from":
        start, pos = _moment(tokens, pos, "from", line)
        if pos >= len(tokens):
            raise RotationError(line, f"expected 'until' after 'from {start}': a 'from' needs an end")
        if _word(tokens[pos]) != "until":
            raise RotationError(line, f"expected 'until' after 'from {start}', got {tokens[pos]!r}")
        pos += 1
    elif first != "until":
        raise RotationError(line, f"a duration starts with 'until' or 'from', got {tokens[0]!r}")
    until, pos = _moment(tokens, pos, "until", line)
    if pos < len(tokens):
        raise RotationError(line, f"unexpected {tokens[pos]!r} after 'until {until}'")
    return start, until


def _moment(tokens: list[str], pos: int, after: str, line: int) -> tuple[Moment, int]:
    if pos >= len(tokens):
        raise RotationError(line, f"expected a day or a time after '{after}', {TIME_EXAMPLES}")
    weekday = _DAYS.get(_word(tokens[pos]))
    if weekday is not None:
        after = tokens[pos]
        pos += 1
        if pos >= len(tokens):
            raise RotationError(line, f"expected a time after {after!r}, {TIME_EXAMPLES}")
    text = tokens[pos]
    pos += 1
    if pos < len(tokens) and _word(tokens[pos]) in ("am", "pm") and _BARE_TIME.fullmatch(text):
        text += tokens[pos]  # "9:00 am"
        pos += 1
    hour_minute = _time(text)
    if hour_minute is None:
        what = "a time" if weekday is not None else "a day (Mon to Sun) or a time"
        raise RotationError(line, f"expected {what} after {after!r}, {TIME_EXAMPLES}; got {text!r}")
    if pos >= len(tokens):
        raise RotationError(line, f"expected a time zone after {text!r}: {ZONE_EXAMPLES}")
    zone = _zone(tokens[pos], line)
    return Moment(hour=hour_minute[0], minute=hour_minute[1], zone=zone, weekday=weekday), pos + 1


def _time(text: str) -> tuple[int, int] | None:
    m = _TIME_12.fullmatch(text)
    if m is not None:
        hour = int(m.group(1)) % 12 + (12 if m.group(3).lower() == "pm" else 0)
        return hour, int(m.group(2) or 0)
    m = _TIME_24.fullmatch(text)
    if m is not None:
        return int(m.group(1)), int(m.group(2))
    return None


def _zone(token: str, line: int) -> str:
    shortcut = _word(token).upper()
    if shortcut in ZONE_SHORTCUTS and token.isascii():
        return shortcut
    if _zoneinfo(token) is None:
        raise RotationError(line, f"unknown time zone {token!r}: use {ZONE_EXAMPLES}")
    return token
