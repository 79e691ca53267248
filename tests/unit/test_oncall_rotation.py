"""The rotation text parser, pure: the grammar, every error naming its line, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron_common.oncall.rotation import (
    DEFAULT_DURATION,
    MAX_LINE_LENGTH,
    MAX_LINES,
    Moment,
    Rotation,
    RotationError,
    ShiftSpec,
    parse,
)

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
MON_9_PT = Moment(9, 0, "PT", MON)


# --- the examples of the issue ---------------------------------------------------------------


def test_three_people_week_long_handing_off_monday_9am_pt() -> None:
    rotation = parse(
        "alice@example.com, until Mon 9:00am PT\n"
        "bob@example.com, until Mon 9:00am PT\n"
        "carol@example.com, until Mon 9:00am PT\n"
    )
    assert rotation.specs == (
        ShiftSpec("alice@example.com", MON_9_PT, line=1),
        ShiftSpec("bob@example.com", MON_9_PT, line=2),
        ShiftSpec("carol@example.com", MON_9_PT, line=3),
    )
    assert rotation.members == ("alice@example.com", "bob@example.com", "carol@example.com")


def test_day_and_night_in_et() -> None:
    rotation = parse("alice@example.com, until 7:30pm ET\nbob@example.com, until 7:30am ET")
    assert [(s.email, s.until, s.start) for s in rotation.specs] == [
        ("alice@example.com", Moment(19, 30, "ET"), None),
        ("bob@example.com", Moment(7, 30, "ET"), None),
    ]


def test_weekday_daytime_with_explicit_starts() -> None:
    days = ("Mon", "Tue", "Wed", "Thu", "Fri")
    rotation = parse("\n".join(f"dev{i}@x.io, from {d} 9:00am PT until {d} 5:00pm PT" for i, d in enumerate(days)))
    for i, spec in enumerate(rotation.specs):
        assert spec.start == Moment(9, 0, "PT", i) and spec.until == Moment(17, 0, "PT", i)


# --- the grammar -----------------------------------------------------------------------------


def test_the_default_duration_is_until_monday_9am_pt() -> None:
    assert DEFAULT_DURATION == "until Mon 9:00am PT"
    assert parse("alice@example.com").specs[0].until == MON_9_PT
    assert parse("  alice@example.com   # on call first\n").specs[0].until == MON_9_PT


@pytest.mark.parametrize(
    ("text", "hour", "minute"),
    [
        ("9:00am", 9, 0),
        ("9am", 9, 0),
        ("09:05AM", 9, 5),
        ("9:00 am", 9, 0),
        ("9 PM", 21, 0),
        ("12:00pm", 12, 0),
        ("12pm", 12, 0),
        ("12:00am", 0, 0),
        ("12:30am", 0, 30),
        ("11:59pm", 23, 59),
        ("17:30", 17, 30),
        ("0:00", 0, 0),
        ("00:15", 0, 15),
        ("23:59", 23, 59),
    ],
)
def test_times(text: str, hour: int, minute: int) -> None:
    spec = parse(f"a@b.c, until {text} UTC").specs[0]
    assert (spec.until.hour, spec.until.minute) == (hour, minute)


@pytest.mark.parametrize(
    ("day", "weekday"),
    [
        ("Mon", MON),
        ("monday", MON),
        ("TUE", TUE),
        ("Tuesday", TUE),
        ("wed", WED),
        ("Thursday", THU),
        ("Fri", FRI),
        ("SATURDAY", SAT),
        ("sun", SUN),
        ("Sunday", SUN),
    ],
)
def test_day_names_any_case(day: str, weekday: int) -> None:
    assert parse(f"a@b.c, until {day} 9am PT").specs[0].until.weekday == weekday


@pytest.mark.parametrize(
    ("zone", "canonical", "key"),
    [
        ("PT", "PT", "America/Los_Angeles"),
        ("pt", "PT", "America/Los_Angeles"),
        ("MT", "MT", "America/Denver"),
        ("CT", "CT", "America/Chicago"),
        ("et", "ET", "America/New_York"),
        ("UTC", "UTC", "UTC"),
        ("utc", "UTC", "UTC"),
        ("Europe/Berlin", "Europe/Berlin", "Europe/Berlin"),
        ("Asia/Kolkata", "Asia/Kolkata", "Asia/Kolkata"),
        ("America/Argentina/Buenos_Aires", "America/Argentina/Buenos_Aires", "America/Argentina/Buenos_Aires"),
        ("Etc/GMT+5", "Etc/GMT+5", "Etc/GMT+5"),
    ],
)
def test_zones(zone: str, canonical: str, key: str) -> None:
    moment = parse(f"a@b.c, until 9am {zone}").specs[0].until
    assert moment.zone == canonical and moment.tzinfo.key == key


def test_keywords_any_case_blank_lines_comments_and_crlf() -> None:
    text = (
        "# the platform team\r\n"
        "\r\n"
        "alice@example.com, UNTIL Mon 9am PT   # first\r\n"
        "   \t\r\n"
        "  # an indented comment\n"
        "bob#ops@example.com,From tue 9AM et Until tue 5PM et\n"
        "\n"
    )
    rotation = parse(text)
    assert [(s.email, s.line) for s in rotation.specs] == [("alice@example.com", 3), ("bob#ops@example.com", 6)]
    assert rotation.specs[1].start == Moment(9, 0, "ET", TUE)


def test_canonical_text_round_trips() -> None:
    rotation = parse("a@b.c,until 9 am utc\n#x\nb@b.c, from sat 23:30 Europe/Berlin until monday 12am et\nc@b.c")
    assert rotation.text() == (
        "a@b.c, until 9:00am UTC\n"
        "b@b.c, from Sat 11:30pm Europe/Berlin until Mon 12:00am ET\n"
        "c@b.c, until Mon 9:00am PT\n"
    )
    assert _without_lines(parse(rotation.text())) == _without_lines(rotation)


def test_members_once_each_in_order() -> None:
    rotation = parse("b@x.io\na@x.io\nb@x.io, until 5pm PT")
    assert rotation.members == ("b@x.io", "a@x.io")


# --- errors name their line ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("alice@example.com until Mon 9:00am PT", 1, "expected a comma between the email address"),
        ("ok@x.io\n\nalice example.com, until 9am PT", 3, "an email address has no spaces"),
        ("# c\nalice, until 9am PT", 2, "exactly one @"),
        ("a@b@c, until 9am PT", 1, "exactly one @"),
        ("@example.com, until 9am PT", 1, "a name before the @"),
        ("alice@, until 9am PT", 1, "a domain after it"),
        (", until 9am PT", 1, "expected 'EMAIL, DURATION'"),
        ("a\x07@b.c, until 9am PT", 1, "control character"),
        ("a@" + "b" * 260 + ", until 9am PT", 1, "at most 254 characters"),
        ("ok@x.io\nalice@example.com,", 2, "expected a duration after the comma"),
        ("alice@example.com,   ", 1, "expected a duration after the comma"),
        ("alice@example.com, Mon 9am PT", 1, "a duration starts with 'until' or 'from', got 'Mon'"),
        ("alice@example.com, till Mon 9am PT", 1, "got 'till'"),
        ("alice@example.com, until", 1, "expected a day or a time after 'until'"),
        ("alice@example.com, until Mon", 1, "expected a time after 'Mon'"),
        ("alice@example.com, until Mon 9am", 1, "expected a time zone after '9am'"),
        ("alice@example.com, until 9:00am", 1, "expected a time zone after '9:00am'"),
        ("alice@example.com, until Mon 13pm PT", 1, "expected a time after 'Mon'"),
        ("alice@example.com, until Mon 9:60am PT", 1, "got '9:60am'"),
        ("alice@example.com, until 24:00 UTC", 1, "got '24:00'"),
        ("alice@example.com, until 17:30pm UTC", 1, "got '17:30pm'"),
        ("alice@example.com, until 9 UTC", 1, "got '9'"),
        ("alice@example.com, until 0am UTC", 1, "got '0am'"),
        ("alice@example.com, until Mond 9am PT", 1, "expected a day (Mon to Sun) or a time after 'until'"),
        ("alice@example.com, until Mon 9am PST", 1, "unknown time zone 'PST'"),
        ("alice@example.com, until Mon 9am Mars/Olympus_Mons", 1, "unknown time zone"),
        ("alice@example.com, until Mon 9am America", 1, "unknown time zone 'America'"),
        ("alice@example.com, until Mon 9am ../../../etc/passwd", 1, "unknown time zone"),
        ("alice@example.com, until Mon 9am /etc/localtime", 1, "unknown time zone"),
        ("alice@example.com, until Mon 9am PT please", 1, "unexpected 'please' after 'until Mon 9:00am PT'"),
        ("alice@example.com, until Mon 9am PT, bob@example.com", 1, "one shift per line"),
        ("alice@example.com, from Mon 9am PT", 1, "expected 'until' after 'from Mon 9:00am PT'"),
        ("a@x.io, from Mon 9am PT to Mon 5pm PT", 1, "expected 'until' after 'from Mon 9:00am PT', got 'to'"),
        ("alice@example.com, from until Mon 5pm PT", 1, "expected a day (Mon to Sun) or a time after 'from'"),
        ("alice@example.com, until Mon 9am PT until Tue 9am PT", 1, "unexpected 'until'"),
        ("ok@x.io\n" + "a@b.c, until 9am PT" + " " * MAX_LINE_LENGTH, 2, f"longer than {MAX_LINE_LENGTH}"),
        ("a@b.c\n" * MAX_LINES + "a@b.c", MAX_LINES + 1, f"at most {MAX_LINES} lines"),
    ],
)
def test_every_parse_error_names_its_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(RotationError) as err:
        parse(text)
    assert err.value.line == line
    assert str(err.value).startswith(f"line {line}: ")
    assert fragment in err.value.reason, err.value.reason
    assert err.value.to_dict() == {"line": line, "message": str(err.value)}


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n   \n"])
def test_a_rotation_without_shifts_is_refused(text: str) -> None:
    with pytest.raises(RotationError) as err:
        parse(text)
    assert err.value.line is None and "no shifts" in str(err.value)


def test_the_bounds_themselves_are_accepted() -> None:
    assert len(parse("a@b.c\n" * MAX_LINES).specs) == MAX_LINES
    longest = "a@b.c, until 9am PT" + " " * (MAX_LINE_LENGTH - len("a@b.c, until 9am PT"))
    assert len(parse(longest).specs) == 1


def test_non_ascii_never_folds_into_a_keyword_or_a_digit() -> None:
    # The Kelvin sign lowercases to "k", Arabic-Indic digits are digits to int(): neither is ours.
    for text in ("a@b.c, until ٩am UTC", "a@b.c, until 9am UTC\u212a", "a@b.c, until 9am ＰＴ"):
        with pytest.raises(RotationError):
            parse(text)
    with pytest.raises(RotationError, match="no spaces"):
        parse("a@b.c\u00a0x, until 9am PT")  # a no-break space is a space


def test_parse_refuses_what_is_not_text() -> None:
    with pytest.raises(RotationError):
        parse(b"a@b.c")  # type: ignore[arg-type]


# --- fuzzing ---------------------------------------------------------------------------------

KEYWORDS = "until from UNTIL Mon sunday 9am 9:00am 12:00pm 17:30 24:00 am pm PT ET utc Europe/Berlin Mars/Base"
WORDS = st.sampled_from([*KEYWORDS.split(), "a@b.c", "@", ",", "#", "x", "", "\t", "\r", "\x00", "é", "٩"])
LINE = st.lists(st.one_of(WORDS, st.text(max_size=8)), max_size=10).map(" ".join)
GRAMMAR_SHAPED = st.lists(
    st.one_of(LINE, st.tuples(st.sampled_from(["a@b.c", "x@y", "bad"]), LINE).map(", ".join)), max_size=6
).map("\n".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), GRAMMAR_SHAPED))
def test_fuzz_any_text_parses_or_raises_rotation_error(text: str) -> None:
    try:
        rotation = parse(text)
    except RotationError as exc:
        assert exc.line is None or 1 <= exc.line <= MAX_LINES + 1
        assert exc.reason
        return
    assert rotation.specs
    assert _without_lines(parse(rotation.text())) == _without_lines(rotation)


def _without_lines(rotation: Rotation) -> list[tuple[str, Moment, Moment | None]]:
    return [(s.email, s.until, s.start) for s in rotation.specs]
