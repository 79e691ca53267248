"""The on-call API on a frozen clock (ingest only): people and channels, the example rotations of
Heii On-Call's manual through the API (DST included), shifts reassigned, deleted and re-added,
escalation ladders, services mapped to rotations, and who is on call now and next."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from heron_common.clock import FrozenClock
from heron_common.settings import Settings
from tests.support.system import System, running_system

# Monday 2 March 2026, 18:00 UTC = 10:00am Pacific (PST): the week before the US DST change (8 March).
T0 = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)


def z(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def call(system: System, method: str, path: str, key: str | None, body: Any = None, **kw: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with system.http.request(method, f"{system.ingest.url}{path}", json=body, headers=headers, **kw) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else None)


@pytest.fixture
async def api(settings: Settings):
    clock = FrozenClock(T0.timestamp())
    async with running_system(settings, clock=clock, services=()) as system:
        _, key = await system.create_project("oncall")
        yield system, key, clock


async def users(system: System, key: str, *emails: str) -> dict[str, dict[str, Any]]:
    out = {}
    for email in emails:
        status, user = await call(system, "POST", "/v1/users", key, {"email": email, "name": email.split("@")[0]})
        assert status == 201, user
        status, channel = await call(
            system, "POST", f"/v1/users/{user['id']}/channels", key, {"kind": "email", "target": email}
        )
        assert status == 201, channel
        out[email] = user
    return out


async def test_users_and_their_channels(api) -> None:
    system, key, _ = api
    status, alice = await call(
        system, "POST", "/v1/users", key, {"email": "alice@example.com", "name": "Alice", "time_zone": "PT"}
    )
    assert status == 201 and alice["time_zone"] == "PT" and alice["channels"] == []
    # The same email in another case is the same person.
    status, err = await call(system, "POST", "/v1/users", key, {"email": "ALICE@example.com"})
    assert status == 409 and err["error"]["code"] == "email_taken"
    for body, field in (
        ({"name": "x"}, "email"),
        ({"email": "not an email"}, "email"),
        ({"email": "b@example.com", "time_zone": "Mars/Olympus"}, "time_zone"),
        ({"email": "b@example.com", "colour": "red"}, "colour"),
    ):
        status, err = await call(system, "POST", "/v1/users", key, body)
        assert status == 422 and field in err["error"]["message"], (body, err)

    uid = alice["id"]
    status, email = await call(system, "POST", f"/v1/users/{uid}/channels", key, {"kind": "email", "target": "a@x.io"})
    assert status == 201 and email["delay"] == 0 and "secret" not in email
    status, slack = await call(
        system, "POST", f"/v1/users/{uid}/channels", key, {"kind": "slack", "target": "U024BE7LH", "delay": 300}
    )
    assert status == 201 and slack["delay"] == 300
    status, hook = await call(
        system, "POST", f"/v1/users/{uid}/channels", key, {"kind": "webhook", "target": "https://example.com/page"}
    )
    assert status == 201 and hook["secret"].startswith("sec_")  # shown once
    for body, field in (
        ({"kind": "pager", "target": "x"}, "kind"),
        ({"kind": "email", "target": "nope"}, "target"),
        ({"kind": "slack", "target": "#general"}, "target"),
        ({"kind": "webhook", "target": "http://169.254.169.254/latest"}, "target"),
        ({"kind": "email", "target": "a@x.io", "delay": -1}, "delay"),
    ):
        status, err = await call(system, "POST", f"/v1/users/{uid}/channels", key, body)
        assert status == 422 and field in err["error"]["message"], (body, err)

    status, shown = await call(system, "GET", f"/v1/users/{uid}", key)
    assert status == 200 and [c["kind"] for c in shown["channels"]] == ["email", "webhook", "slack"]  # by delay
    assert all("secret" not in c for c in shown["channels"])
    status, changed = await call(system, "PATCH", f"/v1/users/{uid}/channels/{slack['id']}", key, {"delay": 600})
    assert status == 200 and changed["delay"] == 600
    status, _ = await call(system, "DELETE", f"/v1/users/{uid}/channels/{hook['id']}", key)
    assert status == 204
    status, renamed = await call(system, "PATCH", f"/v1/users/{uid}", key, {"name": "Alice L.", "time_zone": "UTC"})
    assert status == 200 and (renamed["name"], renamed["time_zone"]) == ("Alice L.", "UTC")
    status, err = await call(system, "PATCH", f"/v1/users/{uid}", key, {"email": "other@example.com"})
    assert status == 422 and "email" in err["error"]["message"]
    status, listed = await call(system, "GET", "/v1/users", key)
    assert status == 200 and [u["email"] for u in listed] == ["alice@example.com"] and len(listed[0]["channels"]) == 2
    status, _ = await call(system, "DELETE", f"/v1/users/{uid}", key)
    assert status == 204
    assert (await call(system, "GET", f"/v1/users/{uid}", key))[0] == 404


async def test_a_rotation_the_parser_refuses_is_a_422_naming_the_line(api) -> None:
    system, key, _ = api
    spec = "alice@example.com, until Mon 9:00am PT\nbob@example.com, until Mon 9:00am PX\n"
    status, err = await call(system, "POST", "/v1/rotations", key, {"name": "Platform", "spec": spec})
    assert status == 422 and err["error"]["code"] == "invalid_rotation"
    assert "line 2" in err["error"]["message"] and "time zone" in err["error"]["message"]
    status, err = await call(system, "POST", "/v1/rotations", key, {"name": "Platform", "spec": "# nobody\n"})
    assert status == 422 and "no shifts" in err["error"]["message"]
    status, err = await call(system, "POST", "/v1/rotations", key, {"name": "Platform"})
    assert status == 422 and "spec" in err["error"]["message"]
    status, err = await call(system, "POST", "/v1/rotations", key, {"name": "P", "spec": "a@x.io", "repeat_every": 5})
    assert status == 422 and "repeat_every" in err["error"]["message"]  # the floor is HERON_ONCALL_MIN_REPEAT


async def rotation(system: System, key: str, name: str, spec: str, anchor: datetime, **more: Any) -> dict[str, Any]:
    status, made = await call(
        system, "POST", "/v1/rotations", key, {"name": name, "spec": spec, "anchor": z(anchor), **more}
    )
    assert status == 201, made
    return made


async def shifts(system: System, key: str, rotation_id: int, **query: str) -> list[tuple[str, str, str]]:
    status, rows = await call(system, "GET", f"/v1/rotations/{rotation_id}/shifts", key, params=query)
    assert status == 200, rows
    return [(r["email"], r["starts_at"], r["ends_at"]) for r in rows]


async def oncall(system: System, key: str, service_id: int) -> tuple[str | None, str | None]:
    status, answer = await call(system, "GET", f"/v1/services/{service_id}/oncall", key)
    assert status == 200, answer
    return (
        answer["now"]["email"] if answer["now"] else None,
        answer["next"]["email"] if answer["next"] else None,
    )


async def service_on(system: System, key: str, name: str, rotation_id: int) -> int:
    status, service = await call(system, "POST", "/v1/services", key, {"name": name})
    assert status == 201
    status, mapped = await call(
        system, "PUT", f"/v1/services/{service['id']}/rotation", key, {"rotation_id": rotation_id}
    )
    assert status == 200 and mapped["rotation_id"] == rotation_id
    return service["id"]


async def test_three_people_weekly_handing_off_monday_9am_pacific_across_dst(api) -> None:
    system, key, clock = api
    await users(system, key, "alice@example.com", "bob@example.com")  # carol has no user: on call, paged nowhere
    spec = "".join(f"{p}@example.com, until Mon 9:00am PT\n" for p in ("alice", "bob", "carol"))
    made = await rotation(system, key, "Platform", spec, datetime(2026, 3, 2, 17, 0, tzinfo=UTC))  # Mon 9am PST
    assert made["members"] == ["alice@example.com", "bob@example.com", "carol@example.com"]
    assert made["unknown_members"] == ["carol@example.com"]
    # At least two weeks ahead; 9am Pacific is 17:00 UTC before 8 March and 16:00 UTC after.
    assert await shifts(system, key, made["id"]) == [
        ("alice@example.com", "2026-03-02T17:00:00Z", "2026-03-09T16:00:00Z"),
        ("bob@example.com", "2026-03-09T16:00:00Z", "2026-03-16T16:00:00Z"),
        ("carol@example.com", "2026-03-16T16:00:00Z", "2026-03-23T16:00:00Z"),
    ]
    assert made["shifts_until"] == "2026-03-23T16:00:00Z"
    service = await service_on(system, key, "API", made["id"])
    assert await oncall(system, key, service) == ("alice@example.com", "bob@example.com")
    clock.set(datetime(2026, 3, 9, 16, 0, tzinfo=UTC).timestamp())  # the handover itself: the incoming person
    assert await oncall(system, key, service) == ("bob@example.com", "carol@example.com")
    status, answer = await call(system, "GET", f"/v1/services/{service}/oncall", key)
    assert answer["now"]["user_id"] is not None and answer["now"]["name"] == "bob"
    assert answer["rotation"] == {"id": made["id"], "name": "Platform"}

    # Add a full rotation's worth: one more turn of every line, after the last shift.
    status, added = await call(system, "POST", f"/v1/rotations/{made['id']}/shifts/full_rotation", key)
    assert status == 201
    assert [(s["email"], s["starts_at"]) for s in added] == [
        ("alice@example.com", "2026-03-23T16:00:00Z"),
        ("bob@example.com", "2026-03-30T16:00:00Z"),
        ("carol@example.com", "2026-04-06T16:00:00Z"),
    ]


async def test_day_and_night_in_eastern_time(api) -> None:
    system, key, _ = api
    spec = "alice@example.com, until 7:30pm ET\nbob@example.com, until 7:30am ET\n"
    made = await rotation(system, key, "Ops", spec, datetime(2026, 3, 2, 12, 30, tzinfo=UTC))  # 7:30am EST
    rows = await shifts(system, key, made["id"], **{"from": "2026-03-02T00:00:00Z", "until": "2026-03-10T00:00:00Z"})
    assert rows[:2] == [
        ("alice@example.com", "2026-03-02T12:30:00Z", "2026-03-03T00:30:00Z"),
        ("bob@example.com", "2026-03-03T00:30:00Z", "2026-03-03T12:30:00Z"),
    ]
    # Across the change to EDT at 2am on Sunday 8 March: that night is an hour shorter, and 7:30
    # ET is 11:30 / 23:30 UTC from then on.
    assert ("bob@example.com", "2026-03-08T00:30:00Z", "2026-03-08T11:30:00Z") in rows
    assert ("alice@example.com", "2026-03-08T11:30:00Z", "2026-03-08T23:30:00Z") in rows
    assert ("bob@example.com", "2026-03-08T23:30:00Z", "2026-03-09T11:30:00Z") in rows
    assert all(a[2] == b[1] for a, b in itertools.pairwise(rows))  # no gaps, no overlaps


async def test_weekday_daytime_only_has_gaps_when_nobody_is_on_call(api) -> None:
    system, key, clock = api
    days = ("Mon", "Tue", "Wed", "Thu", "Fri")
    people = ("alice", "bob", "carol", "dave", "erin")
    spec = "".join(
        f"{p}@example.com, from {d} 9:00am PT until {d} 5:00pm PT\n" for p, d in zip(people, days, strict=True)
    )
    made = await rotation(system, key, "Staging", spec, datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    rows = await shifts(system, key, made["id"], **{"from": "2026-03-02T00:00:00Z", "until": "2026-03-07T00:00:00Z"})
    assert rows == [
        (f"{p}@example.com", f"2026-03-0{2 + i}T17:00:00Z", f"2026-03-0{3 + i}T01:00:00Z") for i, p in enumerate(people)
    ]
    service = await service_on(system, key, "Staging API", made["id"])
    assert await oncall(system, key, service) == ("alice@example.com", "bob@example.com")
    clock.set(datetime(2026, 3, 7, 12, 0, tzinfo=UTC).timestamp())  # Saturday: a gap
    assert await oncall(system, key, service) == (None, "alice@example.com")


async def test_reassigning_deleting_and_re_adding_shifts(api) -> None:
    system, key, _ = api
    people = await users(system, key, "alice@example.com", "bob@example.com", "dave@example.com")
    spec = "alice@example.com, until Mon 9:00am PT\nbob@example.com\n"
    made = await rotation(system, key, "Platform", spec, datetime(2026, 3, 2, 17, 0, tzinfo=UTC))
    rid = made["id"]
    status, listed = await call(system, "GET", f"/v1/rotations/{rid}/shifts", key)
    first = listed[0]
    # A trade: dave takes alice's week.
    status, traded = await call(
        system, "PATCH", f"/v1/rotations/{rid}/shifts/{first['id']}", key, {"user_id": people["dave@example.com"]["id"]}
    )
    assert status == 200 and traded["email"] == "dave@example.com" and traded["starts_at"] == first["starts_at"]
    service = await service_on(system, key, "API", rid)
    assert await oncall(system, key, service) == ("dave@example.com", "bob@example.com")
    status, err = await call(system, "PATCH", f"/v1/rotations/{rid}/shifts/{first['id']}", key, {"email": "x@y.io"})
    assert status == 422 and "email" in err["error"]["message"]
    status, err = await call(system, "PATCH", f"/v1/rotations/{rid}/shifts/999999", key, {"email": "bob@example.com"})
    assert status == 404

    # Delete every shift from the 9 March handover on, then re-add a full rotation after the rest.
    status, err = await call(system, "DELETE", f"/v1/rotations/{rid}/shifts", key)
    assert status == 422 and "from" in err["error"]["message"]
    status, deleted = await call(
        system, "DELETE", f"/v1/rotations/{rid}/shifts", key, params={"from": "2026-03-09T16:00:00Z"}
    )
    assert status == 200 and deleted["deleted"] == 2
    assert await shifts(system, key, rid) == [("dave@example.com", "2026-03-02T17:00:00Z", "2026-03-09T16:00:00Z")]
    assert await oncall(system, key, service) == ("dave@example.com", None)
    status, added = await call(system, "POST", f"/v1/rotations/{rid}/shifts/full_rotation", key)
    assert status == 201
    # The traded shift came from line 1 (alice): the schedule goes on with line 2.
    assert [(s["email"], s["starts_at"], s["ends_at"]) for s in added] == [
        ("bob@example.com", "2026-03-09T16:00:00Z", "2026-03-16T16:00:00Z"),
        ("alice@example.com", "2026-03-16T16:00:00Z", "2026-03-23T16:00:00Z"),
    ]
    assert await oncall(system, key, service) == ("dave@example.com", "bob@example.com")


async def test_escalation_ladder_and_rotation_changes(api) -> None:
    system, key, _ = api
    people = await users(system, key, "alice@example.com", "boss@example.com")
    made = await rotation(system, key, "Platform", "alice@example.com\n", T0, repeat_every=300)
    rid = made["id"]
    assert made["repeat_every"] == 300
    ladder = [
        {"delay": 900, "target": "previous"},
        {"delay": 1800, "target": "rotation"},
        {"delay": 2700, "target": "user", "email": "BOSS@example.com"},
    ]
    for step in ladder:
        status, made_step = await call(system, "POST", f"/v1/rotations/{rid}/escalations", key, step)
        assert status == 201, made_step
    status, listed = await call(system, "GET", f"/v1/rotations/{rid}/escalations", key)
    assert [(e["delay"], e["target"], e["email"]) for e in listed] == [
        (900, "previous", None),
        (1800, "rotation", None),
        (2700, "user", "boss@example.com"),
    ]
    for body, field in (
        ({"target": "previous"}, "delay"),
        ({"delay": 60, "target": "everyone"}, "target"),
        ({"delay": 60, "target": "user"}, "user"),
        ({"delay": 60, "target": "previous", "email": "boss@example.com"}, "user"),
        ({"delay": 60, "target": "user", "email": "nobody@example.com"}, "email"),
        ({"delay": 8 * 86400, "target": "previous"}, "delay"),
    ):
        status, err = await call(system, "POST", f"/v1/rotations/{rid}/escalations", key, body)
        assert status == 422 and field in err["error"]["message"], (body, err)
    # The boss is named by a strategy: deleting them is refused until it changes.
    boss = people["boss@example.com"]["id"]
    status, err = await call(system, "DELETE", f"/v1/users/{boss}", key)
    assert status == 409 and err["error"]["code"] == "user_in_use"
    status, changed = await call(
        system,
        "PATCH",
        f"/v1/rotations/{rid}/escalations/{listed[2]['id']}",
        key,
        {"target": "rotation", "delay": 3600},
    )
    assert status == 200 and (changed["target"], changed["user_id"], changed["delay"]) == ("rotation", None, 3600)
    assert (await call(system, "DELETE", f"/v1/users/{boss}", key))[0] == 204
    assert (await call(system, "DELETE", f"/v1/rotations/{rid}/escalations/{listed[0]['id']}", key))[0] == 204

    status, renamed = await call(
        system, "PATCH", f"/v1/rotations/{rid}", key, {"name": "Core", "spec": "alice@example.com\nbob@example.com\n"}
    )
    assert (
        status == 200 and renamed["name"] == "Core" and renamed["members"] == ["alice@example.com", "bob@example.com"]
    )
    status, err = await call(
        system, "PATCH", f"/v1/rotations/{rid}", key, {"spec": "bob@example.com, until Mon 25:00 PT"}
    )
    assert status == 422 and "line 1" in err["error"]["message"]
    status, listed = await call(system, "GET", "/v1/rotations", key)
    assert [r["name"] for r in listed] == ["Core"] and len(listed[0]["escalations"]) == 2

    service = await service_on(system, key, "API", rid)
    assert (await call(system, "DELETE", f"/v1/rotations/{rid}", key))[0] == 204
    status, shown = await call(system, "GET", f"/v1/services/{service}", key)
    assert status == 200 and shown["rotation_id"] is None
    assert await oncall(system, key, service) == (None, None)


async def test_another_projects_on_call_rows_are_not_found(api) -> None:
    system, key, _ = api
    people = await users(system, key, "alice@example.com")
    made = await rotation(system, key, "Platform", "alice@example.com\n", T0)
    _, other = await system.create_project("other")
    uid, rid = people["alice@example.com"]["id"], made["id"]
    for method, path in (
        ("GET", f"/v1/users/{uid}"),
        ("PATCH", f"/v1/users/{uid}"),
        ("GET", f"/v1/users/{uid}/channels"),
        ("GET", f"/v1/rotations/{rid}"),
        ("GET", f"/v1/rotations/{rid}/shifts"),
        ("POST", f"/v1/rotations/{rid}/shifts/full_rotation"),
        ("GET", f"/v1/rotations/{rid}/escalations"),
        ("DELETE", f"/v1/rotations/{rid}"),
    ):
        status, err = await call(system, method, path, other, {} if method == "PATCH" else None)
        assert status == 404 and err["error"]["code"] == "not_found", (method, path, status)
    status, service = await call(system, "POST", "/v1/services", other, {"name": "Theirs"})
    status, err = await call(system, "PUT", f"/v1/services/{service['id']}/rotation", other, {"rotation_id": rid})
    assert status == 422 and "rotation_id" in err["error"]["message"]
    assert (await call(system, "GET", "/v1/rotations", other))[1] == []
    assert (await call(system, "GET", "/v1/users", other))[1] == []
    assert (await call(system, "GET", f"/v1/rotations/{rid}", key))[0] == 200


async def test_the_top_up_keeps_two_weeks_ahead_and_never_touches_existing_shifts(api, pg) -> None:
    from datetime import timedelta

    from heron_common import oncall_store

    system, key, _ = api
    spec = "alice@example.com, until Mon 9:00am PT\nbob@example.com, until Mon 9:00am PT\n"
    made = await rotation(system, key, "Platform", spec, datetime(2026, 3, 2, 17, 0, tzinfo=UTC))
    rid = made["id"]
    before = await shifts(system, key, rid, **{"from": "2026-01-01T00:00:00Z"})
    first = await pg.fetch("SELECT id, email, starts_at, ends_at FROM shifts WHERE rotation_id = $1 ORDER BY id", rid)
    # Someone trades the second week; a week later the loop tops the schedule up.
    await pg.execute("UPDATE shifts SET email = 'carol@example.com' WHERE id = $1", first[1]["id"])
    later = T0 + timedelta(days=7)
    added = await oncall_store.top_up_all(pg, later, 14)
    assert added >= 1
    assert await oncall_store.top_up_all(pg, later, 14) == 0  # nothing twice
    after = await shifts(system, key, rid, **{"from": "2026-01-01T00:00:00Z"})
    assert after[: len(before)] == [before[0], ("carol@example.com", *before[1][1:]), *before[2:]]
    ends = datetime.fromisoformat(after[-1][2].replace("Z", "+00:00"))
    assert ends >= later + timedelta(days=14)
    # The lines go on in turn after the last generated shift (alice, bob, alice, …).
    assert [e for e, _, _ in after] == ["alice@example.com", "carol@example.com"] + [
        ("alice@example.com", "bob@example.com")[i % 2] for i in range(len(after) - 2)
    ]
    assert all(a[2] == b[1] for a, b in itertools.pairwise(after))
