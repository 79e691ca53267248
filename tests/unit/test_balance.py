from heron_detector.balance import owner, shards_to_yield


def test_every_shard_has_one_owner_and_load_spreads() -> None:
    members = ["a", "b", "c"]
    owners = [owner(s, members) for s in range(48)]
    assert set(owners) == set(members)
    assert all(owners.count(m) >= 8 for m in members)  # roughly a third each


def test_a_joining_detector_takes_only_its_own_shards() -> None:
    before = {s: owner(s, ["a", "b"]) for s in range(64)}
    after = {s: owner(s, ["a", "b", "c"]) for s in range(64)}
    moved = [s for s in range(64) if before[s] != after[s]]
    assert moved and all(after[s] == "c" for s in moved)


def test_yield_what_belongs_to_others_but_not_twice_in_a_row() -> None:
    members = ["a", "b"]
    mine = [s for s in range(16) if owner(s, members) == "a"]
    theirs = [s for s in range(16) if owner(s, members) == "b"]
    assert shards_to_yield("a", members, range(16), {}, now=100.0, cooldown=10.0) == theirs
    recently = {theirs[0]: 95.0}
    assert shards_to_yield("a", members, range(16), recently, now=100.0, cooldown=10.0) == theirs[1:]
    assert shards_to_yield("a", ["a"], range(16), {}, now=100.0, cooldown=10.0) == []
    assert mine
